"""Lesson 09 (export and serve): decoding image bytes inside the serving signature, a TF Serving image request."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any, Callable

import numpy as np

from kitlib.checks.core import (
    CheckFailed,
    call,
    call_on_copies,
    error_summary,
    expect,
    passed,
)

IMAGE_INPUT = "image_bytes"  # the input name of the lesson's "serve" signature


def _encoded_test_images() -> tuple[list[bytes], list[str]]:
    """A non-square colour JPEG and a grayscale PNG, each with a gradient and a sharp edge."""
    from PIL import Image

    colour = np.zeros((24, 40, 3), "uint8")
    colour[..., 0] = np.linspace(0, 255, 40, dtype="uint8")[None, :]  # red rises left to right
    colour[:12, :, 2] = 200  # blue top half
    gray = np.tile(np.linspace(255, 0, 18, dtype="uint8")[:, None], (1, 30))  # bright top, dark bottom
    gray[:, 20:] = 255
    encoded = []
    for pixels, fmt in ((colour, "JPEG"), (gray, "PNG")):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        encoded.append(buffer.getvalue())
    return encoded, ["a 40x24 colour JPEG", "a 30x18 grayscale PNG"]


def decoded_images(fn: Callable[[Any, int], Any]) -> None:
    """Check `fn(encoded, size)` turns JPEG/PNG bytes into [0, 1] images of `size`, traced as the export does."""
    import tensorflow as tf

    size = 8
    encoded, what = _encoded_test_images()
    signature = [tf.TensorSpec((None,), tf.string)]  # the "serve" endpoint's: a batch of unknown size
    try:
        call(fn, tf.constant(encoded), size)  # eagerly first: the stub reads as usual
    except CheckFailed as failure:
        if failure.__cause__ is None:
            raise
        raise CheckFailed(f"decode_images fails on a batch of {' and '.join(what)}.\n"
                          f"  error: {error_summary(failure.__cause__)}\n"
                          "  hint: decode with channels=3 so that every image has 3 channels (a grayscale PNG has 1), "
                          "and resize each to (size, size) so that they stack into one batch.") from failure.__cause__
    try:
        traced = tf.function(lambda images: fn(images, size), input_signature=signature).get_concrete_function()
    except Exception as exc:
        raise CheckFailed("decode_images fails when traced for export, with a batch of strings of unknown size "
                          "(tf.TensorSpec((None,), tf.string)) as the serving signature gives it.\n"
                          f"  error: {error_summary(exc)}\n"
                          "  hint: tf.io.decode_image(b, channels=3, expand_animations=False) gives a 3-D image of "
                          "known rank that tf.image.resize accepts; map it over the batch with tf.map_fn(..., "
                          "fn_output_signature=tf.float32).") from exc
    shape = traced.structured_outputs.shape
    expect(shape.rank == 4 and shape[1:].as_list() == [size, size, 3], "The traced output has the shape the model "
           "expects, known when the signature is exported.", f"(None, {size}, {size}, 3)", shape,
           "Decode with channels=3 (a grayscale PNG has 1 channel, a PNG with alpha 4) and resize to (size, size).")
    got = np.asarray(traced(tf.constant(encoded)))
    expect(got.shape == (2, size, size, 3), "One RGB image per encoded string.", (2, size, size, 3), got.shape,
           "Decode with channels=3 and resize each image to (size, size).")
    expect(got.dtype == np.float32 and 0.0 <= got.min() and got.max() <= 1.0, "Pixels as float32 in [0, 1].",
           "float32 in [0, 1]", f"{got.dtype} in [{got.min():.2f}, {got.max():.2f}]", "Divide by 255.0 after resizing.")
    for image, name, received in zip(encoded, what, got):
        decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
        want = np.asarray(tf.image.resize(decoded, (size, size))) / 255.0
        error = float(np.abs(received - want).mean())
        expect(error < 0.02, f"{name} resized (stretched to {size}x{size}, as the model's training images were), "
               "not cropped or padded.", "mean |difference| < 0.02 from tf.image.resize of the whole image",
               f"mean |difference| {error:.3f}", "Use tf.image.resize(image, (size, size)), not "
               "resize_with_crop_or_pad or a crop: those cut or pad the photo instead of scaling it.")
    passed("encoded bytes in, model-ready images out, traced as the export signature runs it.")


def _image_bytes_of(instance: Any) -> Any:
    """The {"b64": ...} object of one row: the row itself, or its value under the named input."""
    if isinstance(instance, dict) and set(instance) == {IMAGE_INPUT}:
        return instance[IMAGE_INPUT]
    return instance


def serving_request(fn: Callable[[list[bytes]], dict]) -> None:
    """Check `fn(list_of_bytes)` builds a TF Serving row-format request with each image as {"b64": ...}."""
    images = [b"\xff\xd8\xff\xfb\xef\xbeJPEG", b"\x89PNG\r\n\x1a\n\xfb\xff\xfePNG"]  # base64 with + and /
    got = call_on_copies(fn, images)
    expect(isinstance(got, dict) and list(got) == ["instances"], 'The body is {"instances": [...]} (row format).',
           {"instances": ["..."]}, list(got) if isinstance(got, dict) else type(got).__name__,
           'Return {"instances": [...]}, one entry per image.')
    instances = got["instances"]
    expect(isinstance(instances, list) and len(instances) == len(images), "One instance per image, in order.",
           f"a list of {len(images)}", instances, "Build the list with one entry per image.")
    values = [_image_bytes_of(instance) for instance in instances]
    expect(all(isinstance(v, dict) and set(v) == {"b64"} for v in values),
           'JSON cannot carry raw bytes: TF Serving wants each binary value as {"b64": "<base64 text>"}, either as '
           f'the row itself or under the input\'s name ({{"{IMAGE_INPUT}": {{"b64": ...}}}}).',
           [{"b64": "..."}] * 2, [str(v)[:60] for v in values], "Use {'b64': base64.b64encode(data).decode('ascii')}.")
    texts = [v["b64"] for v in values]
    expect(all(isinstance(t, str) for t in texts), "The b64 value must be text: JSON has no bytes type.",
           "str", [type(t).__name__ for t in texts], "base64.b64encode returns bytes: add .decode('ascii').")
    try:
        json.dumps(got)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"The body must be JSON-serialisable, as it is sent over HTTP.\n  error: {exc}\n"
                          "  hint: use only dicts, lists and str in the body.") from None
    for text, image in zip(texts, images):
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            decoded = None
        if text == base64.urlsafe_b64encode(image).decode("ascii"):
            hint = "That is URL-safe base64 (- and _): TF Serving decodes standard base64, base64.b64encode."
        elif text == image.hex():
            hint = "That is hexadecimal, not base64: use base64.b64encode(data).decode('ascii')."
        else:
            hint = "Encode each image once, in the order given, with base64.b64encode(data).decode('ascii')."
        expect(decoded == image, "Each value must be standard base64 (RFC 4648, the alphabet with + and /) of the "
               "original bytes, in order.", base64.b64encode(image).decode("ascii"), text, hint)
    passed("a request TensorFlow Serving (and kitlib.serving) understands.")

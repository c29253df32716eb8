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
    exercise,
    expect,
    expect_unseen,
    passed,
    unseen_rng,
)

IMAGE_INPUT = "image_bytes"  # the input name of the lesson's "serve" signature
_DECODE_SECTION = "'Export with raw-input signatures' and Exercise 1 in lesson 09"
_REQUEST_SECTION = "'Serving over HTTP, TensorFlow Serving style' in lesson 09"


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    """`pixels` encoded as a JPEG or PNG file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _encoded_test_images() -> tuple[list[bytes], list[str]]:
    """A non-square colour JPEG and a grayscale PNG, each with a gradient and a sharp edge."""
    colour = np.zeros((24, 40, 3), "uint8")
    colour[..., 0] = np.linspace(0, 255, 40, dtype="uint8")[None, :]  # red rises left to right
    colour[:12, :, 2] = 200  # blue top half
    gray = np.tile(np.linspace(255, 0, 18, dtype="uint8")[:, None], (1, 30))  # bright top, dark bottom
    gray[:, 20:] = 255
    return [_encoded(colour, "JPEG"), _encoded(gray, "PNG")], ["a 40x24 colour JPEG", "a 30x18 grayscale PNG"]


def _resized(encoded: list[bytes], size: int) -> np.ndarray:
    """The reference: each image decoded to 3 channels and stretched to size x size, in [0, 1]."""
    import tensorflow as tf

    return np.stack([np.asarray(tf.image.resize(tf.io.decode_image(image, channels=3, expand_animations=False),
                                                (size, size))) / 255.0 for image in encoded])


def _traced(fn: Callable[[Any, int], Any], size: int) -> Any:
    """`fn` traced for `size` under the serving signature (a batch of strings of unknown size)."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None,), tf.string)]
    return tf.function(lambda images: fn(images, size), input_signature=signature).get_concrete_function()


def _unseen_images(fn: Callable[[Any, int], Any]) -> None:
    """Fail, without showing them, unless other images at another size and batch size decode right."""
    import tensorflow as tf

    rng = unseen_rng("decoded_images")
    for size, count in [(int(rng.integers(3, 7)), 3), (int(rng.integers(9, 20)), 1)]:
        encoded = [_encoded(rng.integers(0, 256, (int(rng.integers(10, 50)), int(rng.integers(10, 50)), 3),
                                         dtype=np.uint8), "PNG") for _ in range(count)]
        try:
            got = np.asarray(_traced(fn, size)(tf.constant(encoded)))
        except Exception as exc:
            raise CheckFailed("A case not shown failed: another image size or batch size fails when traced for "
                              f"export.\n  error: {error_summary(exc)}\n  hint: use the size you are given, and "
                              "work for any number of images.") from exc
        want = _resized(encoded, size)
        expect_unseen(got.shape == want.shape and float(np.abs(got - want).mean()) < 0.02, "another image size and "
                      "another batch size: the images are not those sizes, or not resized as they should be.",
                      "Use the size you are given, and work for any number of images.")


@exercise("""
    def one(image_bytes): image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False);
    return tf.image.resize(image, (size, size)) / 255.0
    then return tf.map_fn(one, encoded, fn_output_signature=tf.float32)
    """, "decode_images")
def decoded_images(fn: Callable[[Any, int], Any]) -> None:
    """Check `fn(encoded, size)` turns JPEG/PNG bytes into [0, 1] images of `size`, traced as the export does."""
    import tensorflow as tf

    size = 8
    encoded, what = _encoded_test_images()
    try:
        call(fn, tf.constant(encoded), size)  # eagerly first: the stub reads as usual
    except CheckFailed as failure:
        if failure.__cause__ is None:
            raise
        raise CheckFailed(f"decode_images fails on a batch of {' and '.join(what)}.\n"
                          f"  error: {error_summary(failure.__cause__)}\n"
                          "  hint: a grayscale PNG has 1 channel and images come in any shape: give every image 3 "
                          "channels and the same size so that they stack into one batch.") from failure.__cause__
    try:
        traced = _traced(fn, size)
    except Exception as exc:
        raise CheckFailed("decode_images fails when traced for export, with a batch of strings of unknown size "
                          "(tf.TensorSpec((None,), tf.string)) as the serving signature gives it.\n"
                          f"  error: {error_summary(exc)}\n"
                          "  hint: the decoder may return an animation (4-D) unless told otherwise, and the resize "
                          "needs a known rank; the map over the batch needs its output's type. See "
                          f"{_DECODE_SECTION}.") from exc
    shape = traced.structured_outputs.shape
    expect(shape.rank == 4 and shape[1:].as_list() == [size, size, 3], "The traced output has the shape the model "
           "expects, known when the signature is exported.", f"(None, {size}, {size}, 3)", shape,
           "A grayscale PNG has 1 channel, a PNG with alpha 4: ask the decoder for 3, then resize.")
    got = np.asarray(traced(tf.constant(encoded)))
    expect(got.shape == (2, size, size, 3), "One RGB image per encoded string.", (2, size, size, 3), got.shape,
           "Each image: 3 channels, size x size.")
    expect(got.dtype == np.float32 and 0.0 <= got.min() and got.max() <= 1.0, "Pixels as float32 in [0, 1].",
           "float32 in [0, 1]", f"{got.dtype} in [{got.min():.2f}, {got.max():.2f}]",
           "Decoded pixels are 0 to 255; the model was trained on [0, 1].")
    for name, received, want in zip(what, got, _resized(encoded, size)):
        error = float(np.abs(received - want).mean())
        expect(error < 0.02, f"{name} resized (stretched to {size}x{size}, as the model's training images were), "
               "not cropped or padded.", "mean |difference| < 0.02 from tf.image.resize of the whole image",
               f"mean |difference| {error:.3f}", "Stretch the whole photo: cropping or padding cuts or frames it "
               "instead of scaling it.")
    _unseen_images(fn)
    passed("encoded bytes in, model-ready images out, traced as the export signature runs it.")


def _image_bytes_of(instance: Any) -> Any:
    """The {"b64": ...} object of one row: the row itself, or its value under the named input."""
    if isinstance(instance, dict) and set(instance) == {IMAGE_INPUT}:
        return instance[IMAGE_INPUT]
    return instance


def _request_ok(got: Any, images: list[bytes]) -> bool:
    """Whether `got` is a row-format request carrying `images` as standard base64, in order."""
    if not isinstance(got, dict) or list(got) != ["instances"] or not isinstance(got["instances"], list):
        return False
    values = [_image_bytes_of(instance) for instance in got["instances"]]
    return len(values) == len(images) and all(
        isinstance(v, dict) and set(v) == {"b64"} and v["b64"] == base64.b64encode(image).decode("ascii")
        for v, image in zip(values, images))


@exercise("""
    return {"instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}
    """, "image_request")
def serving_request(fn: Callable[[list[bytes]], dict]) -> None:
    """Check `fn(list_of_bytes)` builds a TF Serving row-format request with each image as {"b64": ...}."""
    images = [b"\xff\xd8\xff\xfb\xef\xbeJPEG", b"\x89PNG\r\n\x1a\n\xfb\xff\xfePNG"]  # base64 with + and /
    got = call_on_copies(fn, images)
    expect(isinstance(got, dict) and list(got) == ["instances"], 'The body is {"instances": [...]} (row format).',
           {"instances": ["..."]}, list(got) if isinstance(got, dict) else type(got).__name__,
           f"TF Serving's row format has one key: see {_REQUEST_SECTION}.")
    instances = got["instances"]
    expect(isinstance(instances, list) and len(instances) == len(images), "One instance per image, in order.",
           f"a list of {len(images)}", instances, "One entry per image, in the order given.")
    values = [_image_bytes_of(instance) for instance in instances]
    expect(all(isinstance(v, dict) and set(v) == {"b64"} for v in values),
           'JSON cannot carry raw bytes: TF Serving wants each binary value as {"b64": "<base64 text>"}, either as '
           f'the row itself or under the input\'s name ({{"{IMAGE_INPUT}": {{"b64": ...}}}}).',
           [{"b64": "..."}] * 2, [str(v)[:60] for v in values], f"See how binary values travel in {_REQUEST_SECTION}.")
    texts = [v["b64"] for v in values]
    expect(all(isinstance(t, str) for t in texts), "The b64 value must be text: JSON has no bytes type.",
           "str", [type(t).__name__ for t in texts], "base64.b64encode returns bytes: turn them into text.")
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
            hint = "That is hexadecimal, not base64."
        else:
            hint = "Encode each image once, in the order given, with standard base64."
        expect(decoded == image, "Each value must be standard base64 (RFC 4648, the alphabet with + and /) of the "
               "original bytes, in order.", base64.b64encode(image).decode("ascii"), text, hint)
    rng = unseen_rng("serving_request")
    for count in (3, 1, 0):
        others = [rng.integers(0, 256, int(rng.integers(5, 40)), dtype=np.uint8).tobytes() for _ in range(count)]
        expect_unseen(_request_ok(call_on_copies(fn, others, shown=False), others), "other images, another number "
                      "of them: the request does not carry each one as standard base64, in order.",
                      "Build the request from the images you are given, however many.")
    passed("a request TensorFlow Serving (and kitlib.serving) understands.")

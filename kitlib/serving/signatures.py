"""A SavedModel's serving signatures called on request values, with the cost of encoded images bounded up front.

`SignaturePredictor` answers TF Serving REST requests (`__call__`) and named tensors from gRPC (`run`) alike; both
go through `run`, which refuses a request whose images would decode to more than `max_pixels` pixels in all,
reading only the image headers (PIL opens lazily), before TensorFlow decodes anything.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from kitlib.serving import codec
from kitlib.serving.codec import BadRequest

MAX_PIXELS = 50_000_000  # decoded pixels per request, all images together: a 48-megapixel phone photo fits
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # what tf.io.decode_image reads


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an encoded image, None when the bytes are no image (text, say)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            return image.size
    except Image.DecompressionBombError as exc:
        raise BadRequest(f"an image is far too large to decode ({exc}).") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def check_pixels(tensors: dict[str, Any], limit: int) -> None:
    """A BadRequest when the encoded images among string tensors would decode to more than `limit` pixels."""
    total = 0
    for name, tensor in tensors.items():
        if tensor.dtype.name != "string":
            continue
        for index, item in enumerate(np.ravel(tensor.numpy())):
            size = image_size(item)
            if size is None:
                continue
            total += size[0] * size[1]
            if total > limit:
                raise BadRequest(f"image {index} of input {name!r} ({size[0]}x{size[1]}) brings the request to "
                                 f"{total:,} pixels; the server decodes at most {limit:,} per request: send "
                                 "smaller images, or fewer per request.")


class SignaturePredictor:
    """Calls the serving signatures of a SavedModel on JSON-decoded inputs (`signature_name` picks one)."""

    def __init__(self, path: str | Path, signature: str = "serving_default", max_pixels: int = MAX_PIXELS) -> None:
        import tensorflow as tf

        self._tf = tf
        self.path = str(path)
        self.max_pixels = max_pixels
        self._loaded = tf.saved_model.load(self.path)
        if signature not in self._loaded.signatures:
            raise ValueError(f"{path} has no signature {signature!r}; it has {sorted(self._loaded.signatures)}.")
        self.signature = signature
        self.inputs = self._inputs(signature)

    def _inputs(self, signature: str) -> dict[str, Any]:
        """The named input specs of one signature."""
        return self._loaded.signatures[signature].structured_input_signature[1]

    def describe(self, signature: str | None = None) -> str:
        """The expected inputs, for error messages."""
        inputs = self._inputs(signature or self.signature)
        return ", ".join(f"{name}: {spec.dtype.name} {spec.shape.as_list()}" for name, spec in inputs.items())

    def _tensor(self, name: str, spec: Any, values: Any) -> Any:
        """One input tensor of the signature's dtype, or a BadRequest that says what was expected."""
        try:
            tensor = self._tf.constant(values, dtype=spec.dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(f"input {name!r} must be {spec.dtype.name} of shape {spec.shape.as_list()}: {exc}") from exc
        if not spec.shape.is_compatible_with(tensor.shape):
            raise BadRequest(f"input {name!r} has shape {tensor.shape.as_list()}, expected {spec.shape.as_list()}.")
        return tensor

    def _check_signature(self, signature: Any) -> str:
        """The signature's name, or a BadRequest naming the ones the model has."""
        if not isinstance(signature, str) or signature not in self._loaded.signatures:
            raise BadRequest(f"no signature {signature!r}; this model serves {sorted(self._loaded.signatures)}.")
        return signature

    def run(self, signature: str, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """Call one signature on named input values (lists or arrays); its named outputs as arrays."""
        inputs = self._inputs(self._check_signature(signature))
        missing = [name for name in inputs if name not in feeds]
        if missing:
            raise BadRequest(f"missing inputs {missing}; the model expects {self.describe(signature)}.")
        unknown = sorted(set(feeds) - set(inputs))
        if unknown:
            raise BadRequest(f"unknown inputs {unknown}; the model's inputs are {list(inputs)}.")
        tensors = {name: self._tensor(name, spec, feeds[name]) for name, spec in inputs.items()}
        check_pixels(tensors, self.max_pixels)
        try:
            outputs = self._loaded.signatures[signature](**tensors)
        except (self._tf.errors.InvalidArgumentError, ValueError) as exc:
            message = getattr(exc, "message", str(exc)).strip().splitlines()[0]
            raise BadRequest(
                f"the model rejected the input ({message}); it expects {self.describe(signature)}."
            ) from exc
        return {key: np.asarray(value) for key, value in outputs.items()}

    def __call__(self, request: dict) -> dict:
        """Answer a TF Serving predict request (row or columnar format, optional signature_name)."""
        signature = self._check_signature(request.get("signature_name", self.signature))
        row, feeds = codec.feeds(request, list(self._inputs(signature)))
        return codec.answer(row, self.run(signature, feeds))

"""One image decoder for training and serving: encoded bytes to [0, 1] RGB, 16-bit scaled, EXIF orientation applied.

`decode` is TensorFlow graph code, so a SavedModel's serving signature carries it (`kitlib.models.recipe` exports
it); the training loaders call the very same function on each file (`read_image`), so a photo is the same pixels
when the model learns from it and when it is served. Formats: JPEG, PNG (8 and 16 bit), GIF (first frame), BMP.
The EXIF orientation (JPEG's APP1 segment, PNG's eXIf chunk) is read with bounded loops, so hostile bytes cannot
make it run long; a missing or unreadable tag means "as stored".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

MAX_SEGMENTS = 256  # JPEG segments / PNG chunks looked at for the EXIF block, and IFD entries read in it
ORIENTATION_TAG = 0x0112


class UnreadableImage(Exception):
    """The bytes are not an image the decoder can read (the loaders skip and count such files)."""


def _exif_orientation(image_bytes: Any) -> Any:
    """The EXIF orientation (1 to 8) of encoded JPEG or PNG bytes, as an int64 scalar tensor; 1 when there is none."""
    import tensorflow as tf

    data = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int64)
    n = tf.size(data, out_type=tf.int64)
    padded = tf.concat([data, tf.zeros([16], tf.int64)], 0)

    def byte(i: Any) -> Any:
        return tf.gather(padded, tf.clip_by_value(tf.cast(i, tf.int64), 0, n + 15))

    def u16(i: Any, little: Any) -> Any:
        return tf.where(little, byte(i) + 256 * byte(i + 1), 256 * byte(i) + byte(i + 1))

    def u32(i: Any, little: Any) -> Any:
        return tf.where(little, u16(i, little) + 65536 * u16(i + 2, little), 65536 * u16(i, little) + u16(i + 2, little))

    def matches(at: Any, expected: bytes) -> Any:
        return tf.reduce_all(tf.stack([byte(at + k) == b for k, b in enumerate(expected)]))

    big = tf.constant(False)

    def jpeg_step(pos: Any, found: Any, steps: Any) -> tuple:
        exif = (byte(pos + 1) == 0xE1) & matches(pos + 4, b"Exif\0\0")
        return pos + 2 + u16(pos + 2, big), tf.where(exif, pos + 10, found), steps + 1

    def jpeg_more(pos: Any, found: Any, steps: Any) -> Any:
        return ((found < 0) & (steps < MAX_SEGMENTS) & (pos + 4 <= n) & (byte(pos) == 0xFF)
                & (byte(pos + 1) != 0xDA))  # 0xDA: start of scan, the compressed data follows

    def png_step(pos: Any, found: Any, steps: Any) -> tuple:
        return pos + 12 + u32(pos, big), tf.where(matches(pos + 4, b"eXIf"), pos + 8, found), steps + 1

    def png_more(pos: Any, found: Any, steps: Any) -> Any:
        return (found < 0) & (steps < MAX_SEGMENTS) & (pos + 8 <= n) & ~matches(pos + 4, b"IEND")

    none = tf.constant(-1, tf.int64)
    start = tf.constant(0, tf.int64)
    tiff = tf.case([
        (matches(0, b"\xff\xd8"), lambda: tf.while_loop(jpeg_more, jpeg_step, (start + 2, none, start))[1]),
        (matches(0, b"\x89PNG\r\n\x1a\n"), lambda: tf.while_loop(png_more, png_step, (start + 8, none, start))[1])],
        default=lambda: none)

    def tag() -> Any:
        little = matches(tiff, b"II")
        ifd = tiff + u32(tiff + 4, little)
        count = tf.minimum(u16(ifd, little), MAX_SEGMENTS)

        def step(i: Any, found: Any) -> tuple:
            entry = ifd + 2 + 12 * i
            return i + 1, tf.where(u16(entry, little) == ORIENTATION_TAG, u16(entry + 8, little), found)

        return tf.while_loop(lambda i, found: (i < count) & (found == 0), step, (start, start))[1]

    value = tf.cond(tiff >= 0, tag, lambda: tf.constant(1, tf.int64))
    return tf.where((value >= 1) & (value <= 8), value, 1)


def _oriented(image: Any, orientation: Any) -> Any:
    """`image` turned upright as its EXIF orientation says (the transforms of PIL's `ImageOps.exif_transpose`)."""
    import tensorflow as tf

    def across(x: Any) -> Any:  # mirror left-right
        return tf.reverse(x, [1])

    def down(x: Any) -> Any:  # mirror top-bottom
        return tf.reverse(x, [0])

    def swap(x: Any) -> Any:  # transpose rows and columns
        return tf.transpose(x, [1, 0, 2])

    turns = [lambda: image, lambda: across(image), lambda: down(across(image)), lambda: down(image),
             lambda: swap(image), lambda: swap(down(image)),  # 6: 90 degrees clockwise
             lambda: down(across(swap(image))), lambda: swap(across(image))]  # 8: 90 degrees counter-clockwise
    return tf.switch_case(tf.cast(orientation - 1, tf.int32), turns)


def decode(image_bytes: Any, size: int) -> Any:
    """One encoded image (a scalar string tensor) -> float32 RGB in [0, 1], upright, resized to (size, size, 3)."""
    import tensorflow as tf

    # dtype float32 scales by the file's own bit depth: 16-bit PNGs by 65535, 8-bit images by 255.
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.float32, expand_animations=False)
    image = _oriented(image, _exif_orientation(image_bytes))
    return tf.image.resize(image, (size, size), method="bilinear")


def decode_batch(encoded: Any, size: int) -> Any:
    """A batch of encoded image bytes -> float32 images in [0, 1] of shape (batch, size, size, 3) (serving)."""
    import tensorflow as tf

    return tf.map_fn(lambda image_bytes: decode(image_bytes, size), encoded, fn_output_signature=tf.float32)


@functools.lru_cache(maxsize=8)
def _decoder(size: int) -> Any:
    """`decode` at `size` as one traced function over a scalar string (training calls it once per file)."""
    import tensorflow as tf

    return tf.function(lambda image_bytes: decode(image_bytes, size), autograph=False,
                       input_signature=[tf.TensorSpec([], tf.string)])


def to_uint8(images: Any) -> np.ndarray:
    """[0, 1] float images as uint8 (rounded), the form the loaders keep in memory."""
    return np.clip(np.round(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def read_image(path: Path | str, size: int, max_bytes: int) -> np.ndarray:
    """Decode one image file with `decode` to (size, size, 3) uint8; UnreadableImage when it is not an image.

    The file is checked first (a regular file of at most `max_bytes`: kitlib.data.owndata), and its header read by
    PIL, which refuses decompression bombs (more than twice PIL's MAX_IMAGE_PIXELS) before any pixel is decoded.
    """
    import io

    import tensorflow as tf
    from PIL import Image, UnidentifiedImageError

    from kitlib.data import owndata

    with owndata.open_regular(Path(path), max_bytes) as handle:
        data = handle.read()
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(f"{path}: {exc}") from exc
    try:
        return to_uint8(_decoder(size)(tf.constant(data)))
    except tf.errors.OpError as exc:
        raise UnreadableImage(f"{path}: {exc.message}") from exc

"""Reading examples off disk: an archive's class folders, review files, and images decoded to uint8 RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kitlib import progress
from kitlib.data import images, owndata
from kitlib.data.manifest import ArchiveSpec, LayoutError

TEXT_EXTENSIONS = (".txt",)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def class_files(root: Path, spec: ArchiveSpec, split: str, extensions: tuple[str, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Paths (sorted, for determinism) and labels of the files in one split folder's class sub-folders."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(spec.class_folders()):
        found = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in extensions)
        if not found:
            what = "images" if extensions == IMAGE_EXTENSIONS else f"{'/'.join(extensions)} reviews"
            raise LayoutError(f"{root / split / name} holds no {what}: a class folder must not be empty.")
        paths += found
        labels += [label] * len(found)
    return np.array(paths, dtype=object), np.array(labels, dtype=np.int64)


def read_texts(paths: np.ndarray) -> np.ndarray:
    """Read review files and replace the HTML line breaks IMDB keeps in its text."""
    texts = []
    with progress.bar(len(paths), f"reading {len(paths):,} reviews", unit="files", delay=progress.SLOW) as shown:
        for path in progress.counted(paths, shown):
            try:
                texts.append(Path(path).read_text(encoding="utf-8").replace("<br />", " "))
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); IMDB reviews are UTF-8. "
                    "Replace the file with the one from the official archive, or delete it."
                ) from None
    return np.array(texts, dtype=object)


def read_labelled_texts(paths: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(texts, labels) of review files."""
    return read_texts(paths), labels


def read_image(path: Path, size: int) -> np.ndarray:
    """Decode one image file to a (size, size, 3) uint8 RGB array the way the serving export does.

    Raises `images.UnreadableImage` when the file's bytes are not an image; a fault of the disk (no permission, an
    I/O error) or a file the kit refuses to read (kitlib.data.owndata) is raised as it is, never taken for a broken file.
    """
    try:
        return images.read_image(path, size, owndata.max_bytes())
    except OSError as exc:
        if exc.errno is not None:  # a failed system call: the disk's or the system's fault, not the image's
            raise
        raise images.UnreadableImage(f"{path}: {exc}") from exc  # PIL's own: truncated or broken data


def decode_images(paths: np.ndarray, labels: np.ndarray, size: int, skipped: list[str]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Decode the files, skipping (and recording in `skipped`) the ones whose bytes are not an image."""
    decoded, kept = [], []
    with progress.bar(len(paths), f"decoding {len(paths):,} images", unit="files", delay=progress.SLOW) as shown:
        for path, label in progress.counted(zip(paths, labels), shown):
            try:
                decoded.append(read_image(path, size))
            except images.UnreadableImage:
                skipped.append(str(path))
                continue
            kept.append(label)
    stacked = np.stack(decoded) if decoded else np.zeros((0, size, size, 3), np.uint8)
    return stacked, np.array(kept, dtype=np.int64)


def resized_rgb(images: np.ndarray, image_size: int, chunk: int = 2048) -> np.ndarray:
    """Images in [0, 1] (n, h, w) grey or (n, h, w, 3) RGB as uint8 RGB at `image_size`, resized bilinearly."""
    import tensorflow as tf

    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    parts = [tf.image.resize(images[start:start + chunk].astype(np.float32), (image_size, image_size),
                             method="bilinear").numpy() for start in range(0, len(images), chunk)]
    return np.clip(np.round(np.concatenate(parts) * 255), 0, 255).astype(np.uint8)

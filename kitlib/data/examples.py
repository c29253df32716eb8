"""Lesson 12's example data, written out as a learner's own files would be: a 3-class CSV and class folders.

Both are real and offline: the offline pack's Rotten Tomatoes snippets (fresh and rotten reviews, and plot
summaries) as `rotten_tomatoes_3class.csv`, and scikit-image's LFW subset (faces and non-faces) as
`lfw_faces/face/*.png` and `lfw_faces/not_face/*.png`. Each is written once, atomically, only if missing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from kitlib import _fs, runtime
from kitlib.data import offline

TEXT_FILE = "rotten_tomatoes_3class.csv"
IMAGE_FOLDER = "lfw_faces"


def folder() -> Path:
    """Where the examples go: the kit's data folder (a checkout's data/), else the cache's examples/."""
    return runtime.data_dir() or runtime.cache_dir() / "examples"


def write_text(root: Path) -> Path:
    """The 3-class review CSV (columns text, label) under `root`, written only if missing."""
    path = root / TEXT_FILE
    with _fs.one_at_a_time(path):
        if not path.exists():
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["text", "label"])
            snippets = offline.rotten_tomatoes_snippets(("fresh", "rotten", "plot"))
            writer.writerows((text, label) for text, label in snippets.items() if text)  # one snippet is empty
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _fs.storage_error(exc, f"create the folder {root}") from exc
            _fs.write_atomically(path, buffer.getvalue())
    return path


def write_images(root: Path) -> Path:
    """The LFW faces / non-faces as class folders of grey 25x25 PNGs under `root`, written only if missing."""
    from PIL import Image
    from skimage import data as skdata

    path = root / IMAGE_FOLDER
    with _fs.one_at_a_time(path):
        if not path.exists():
            grey = np.asarray(skdata.lfw_subset(), dtype=np.float64)  # (200, 25, 25) in [0, 1]: 100 faces first
            with _fs.staged_folder(path) as staging:
                for i, image in enumerate(grey):
                    cls = staging / ("face" if i < 100 else "not_face")
                    cls.mkdir(exist_ok=True)
                    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(cls / f"{i:03d}.png")
    return path


def example_data(task: str, root: Path | None = None) -> Path:
    """The example file ("text") or class folders ("image") for lesson 12, written first if missing."""
    if task not in ("text", "image"):
        raise ValueError(f"Unknown task {task!r}: choose 'text' or 'image'.")
    root = root or folder()
    return write_text(root) if task == "text" else write_images(root)

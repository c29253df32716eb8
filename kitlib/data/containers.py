"""What the loaders hand back: labelled examples split into train, val and test, with where they came from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

CLASS_NAMES = ("negative", "positive")


@dataclasses.dataclass
class LabelledSplits:
    """Labelled examples split into train, val and test, with where they came from (text and images share it)."""

    name: str
    title: str
    source: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    batch_size: int
    seed: int
    class_names: tuple[str, ...] = CLASS_NAMES
    unit = "examples"

    def labels(self, split: str) -> np.ndarray:
        """The integer labels of a split (indices into `class_names`)."""
        return self.splits[split][1]

    def _prepare(self, batches: Any) -> Any:
        """Turn stored batches into model inputs (identity here; images scale to [0, 1])."""
        return batches

    def dataset(self, split: str, batch_size: int | None = None, shuffle: bool | None = None) -> Any:
        """A batched, prefetched `tf.data` pipeline of (example, label); train is shuffled."""
        import tensorflow as tf

        examples, labels = self.splits[split]
        ds = tf.data.Dataset.from_tensor_slices((examples, labels))
        shuffle = split == "train" if shuffle is None else shuffle
        if shuffle:
            ds = ds.shuffle(len(labels), seed=self.seed, reshuffle_each_iteration=True)
        return self._prepare(ds.batch(self.batch_size if batch_size is None else batch_size)).prefetch(tf.data.AUTOTUNE)

    @property
    def train(self) -> Any:
        """The shuffled training pipeline."""
        return self.dataset("train")

    @property
    def val(self) -> Any:
        """The validation pipeline."""
        return self.dataset("val")

    @property
    def test(self) -> Any:
        """The test pipeline."""
        return self.dataset("test")

    def _details(self) -> tuple[list[str], list[str]]:
        """Extra summary lines before and after the split sizes."""
        return [], []

    def summary(self) -> str:
        """Source, split sizes and class balance in a few lines."""
        before, after = self._details()
        lines = [f"dataset: {self.title}", f"source: {self.source}", *before]
        for split, (_, labels) in self.splits.items():
            counts = np.bincount(labels, minlength=len(self.class_names))
            balance = " / ".join(
                f"{name} {count / max(len(labels), 1):.0%}" for name, count in zip(self.class_names, counts)
            )
            lines.append(f"  {split:5s} {len(labels):6,d} {self.unit}   {balance}")
        return "\n".join(lines + after)

    def report(self, verbose: bool) -> Any:
        """Print the summary when asked, and hand the data back."""
        if verbose:
            print(self.summary())
        return self


@dataclasses.dataclass
class TextData(LabelledSplits):
    """Labelled text (0 negative, 1 positive) split into train, val and test (what `load_text` gives)."""

    def texts(self, split: str) -> np.ndarray:
        """The raw texts of a split."""
        return self.splits[split][0]


@dataclasses.dataclass
class ImageData(LabelledSplits):
    """Labelled images (uint8, decoded once and kept in memory) split into train, val and test (`load_images`)."""

    image_size: int = 160
    skipped: list[str] = dataclasses.field(default_factory=list)
    unit = "images"

    def images(self, split: str) -> np.ndarray:
        """The uint8 images of a split, shape (n, size, size, 3)."""
        return self.splits[split][0]

    def _prepare(self, batches: Any) -> Any:
        """Scale the uint8 batches to float32 images in [0, 1]."""
        import tensorflow as tf

        return batches.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)

    def _details(self) -> tuple[list[str], list[str]]:
        """The image size and classes before the splits; the skipped files after."""
        shown = ", ".join(Path(p).name for p in self.skipped[:3]) + (" ..." if len(self.skipped) > 3 else "")
        return ([f"images: {self.image_size}x{self.image_size} RGB, classes: {', '.join(self.class_names)}"],
                [f"skipped {len(self.skipped)} unreadable file(s): {shown}" if self.skipped
                 else "skipped 0 unreadable files"])


@dataclasses.dataclass(frozen=True)
class Found:
    """What a source gives a loader: the dataset's name and title, where it came from, its splits and class names."""

    name: str
    title: str
    source: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    class_names: tuple[str, ...] = CLASS_NAMES

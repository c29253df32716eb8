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

    def by_length(self, split: str, batch_size: int | None = None, passes: int = 1,
                  shuffle: bool = True) -> tuple[Any, np.ndarray]:
        """(pipeline, order): `passes` epochs of (text, label) batches of similar length, and the rows they hold.

        For a model that cuts each batch to its longest text (`BertPreprocessor(trim=True)`): batches of short
        texts then compute few padded word pieces. With `shuffle`, every pass draws a new seeded order, sorts each
        run of LENGTH_CHUNK batches by length and shuffles the batches; without, the split is sorted by length once.
        `order` (passes, n) gives the row of every example the pipeline yields, to put predictions back in place.
        """
        import tensorflow as tf

        texts, labels = self.splits[split]
        size = self.batch_size if batch_size is None else batch_size
        lengths = np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
        rng = np.random.default_rng(self.seed)
        order = np.stack([length_grouped(lengths, size, rng if shuffle else None) for _ in range(passes)])
        pipeline = (tf.data.Dataset.from_tensor_slices(order)
                    .flat_map(lambda rows: tf.data.Dataset.from_tensor_slices(rows).batch(size))
                    .map(lambda rows: (tf.gather(texts, rows), tf.gather(labels, rows)))
                    .apply(tf.data.experimental.assert_cardinality(passes * -(-len(labels) // size))))
        return pipeline.prefetch(tf.data.AUTOTUNE), order  # the known length keeps Keras from warning at its end


LENGTH_CHUNK = 50  # batches sorted by length together at most: enough to find neighbours of similar length
MIN_CHUNKS = 8  # runs a pass is cut into at least: a small split sorted whole would hold the same batches every pass


def length_grouped(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Row indices in batch order: each run of batches of a random order (LENGTH_CHUNK, fewer when a pass would
    have under MIN_CHUNKS runs) sorted by length, the full batches shuffled and the one short batch last; without
    `rng`, every row sorted by length."""
    if rng is None:
        return np.argsort(lengths, kind="stable")
    shuffled = rng.permutation(len(lengths))
    chunk = batch_size * max(1, min(LENGTH_CHUNK, len(lengths) // (batch_size * MIN_CHUNKS)))
    grouped = np.concatenate([part[np.argsort(lengths[part], kind="stable")]
                              for part in np.split(shuffled, range(chunk, len(shuffled), chunk))] or [shuffled])
    full = len(grouped) // batch_size * batch_size
    batches = grouped[:full].reshape(-1, batch_size)[rng.permutation(full // batch_size)]
    return np.concatenate([batches.ravel(), grouped[full:]])


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

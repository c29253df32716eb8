"""The loaders lessons call: labelled text (`load_text`), labelled photos (`load_images`), unlabelled reviews.

Each takes the profile's `cfg`, which decides the split sizes, batch size and seed unless a lesson names its own.
A registered dataset comes from its official archive when it can be had (see `sources`), else, only without a
network, from the offline stand-in (see `offline`); a path is the learner's own data (see `owndata`). Each load
prints which source served it, the split sizes and the class balance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kitlib import runtime
from kitlib.data import manifest, offline, owndata, readers, sources, splits
from kitlib.data.containers import CLASS_NAMES, Found, ImageData, TextData

TEXT_DATASETS = ("imdb", "rotten_tomatoes")
IMAGE_DATASETS = ("cats_and_dogs", "lfw", "cifar10", "digits")


class UnknownDatasetError(ValueError):
    """The dataset name is not one the kit knows."""


def _located(name: str, known: tuple[str, ...], what: str, cfg: runtime.Config) -> sources.Located | None:
    """The official archive of a known dataset name, found or not; None for a stand-in asked for by name."""
    if name not in known:
        raise UnknownDatasetError(f"Unknown {what} dataset {name!r}. Known {what} datasets: {', '.join(known)}.")
    return sources.locate(manifest.ARCHIVES[name], cfg) if name in manifest.ARCHIVES else None


def _class_folder_splits(located: sources.Located, extensions: tuple[str, ...], sizes: dict[str, int | None],
                         rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The paths and labels of an archive's splits: train and val from its train folder, test from its other one."""
    spec, root = located.spec, located.root
    train = readers.class_files(root, spec, "train", extensions)
    test = readers.class_files(root, spec, spec.test_folder(), extensions)
    picked = splits.train_val_test(train[1], test[1], sizes, rng)
    return {split: (paths[picked[split]], labels[picked[split]])
            for split, (paths, labels) in (("train", train), ("val", train), ("test", test))}


def load_text(
    name: str | Path,
    cfg: runtime.Config,
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

    Sizes and batch size default to the profile's (None: the profile's); validation is carved from IMDB's train
    folder. Without a network, IMDB falls back to the offline pack's Rotten Tomatoes snippets. A path is your own
    data: a CSV, TSV or JSON-lines file with a text and a label column (found by their usual names, or named by
    `text_column` / `label_column`; `test_file` and `val_file` add a test and a validation file), or a folder with one sub-folder of .txt files
    per class, optionally under train/ (val/) test/. Any number of classes.
    """
    sizes = splits.sizes(cfg, train_size, val_size, test_size)
    seed, batch = splits.seed(cfg, seed), splits.batch_size(cfg, batch_size)
    rng = np.random.default_rng(seed)
    if owndata.is_path(name):
        labelled = owndata.read_text_source(name, text_column, label_column, encoding, test_file, val_file)
        found = _own_splits(labelled, cfg, sizes, rng, seed)
        return TextData(Path(name).stem, found.title, found.source, found.splits, batch, seed,
                        found.class_names).report(verbose)
    located = _located(name, TEXT_DATASETS, "text", cfg)
    if located is not None and located.root is not None:  # the folders are neg/pos; TextData names them negative/positive
        parts = _class_folder_splits(located, readers.TEXT_EXTENSIONS, sizes, rng)
        found = Found(name, located.spec.title, located.source,
                      {split: readers.read_labelled_texts(*part) for split, part in parts.items()}, CLASS_NAMES)
    else:
        found = offline.rotten_tomatoes(sizes, rng, located.note if located else "")
    return TextData(found.name, found.title, found.source, found.splits, batch, seed).report(verbose)


def load_images(
    name: str | Path,
    cfg: runtime.Config,
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

    Sizes and batch size default to the profile's (None: the profile's); validation is carved from the
    archive's train folder, at most a quarter of it (500 of cats vs dogs' 2,000). Files whose bytes cannot be
    decoded are skipped and counted, never fatal; a fault of the disk is raised. Without a network, cats vs dogs
    falls back to scikit-image's real LFW photos (faces vs non-faces), and CIFAR-10 (lesson 11: the official
    python batches, also from Keras' own cache) to scikit-learn's bundled handwritten digits.
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size is the side of the square images in pixels, 1 or more; got {image_size!r}.")
    sizes = splits.sizes(cfg, train_size, val_size, test_size)
    seed, batch = splits.seed(cfg, seed), splits.batch_size(cfg, batch_size)
    rng = np.random.default_rng(seed)
    skipped: list[str] = []
    if owndata.is_path(name):
        labelled = owndata.read_folder(name, readers.IMAGE_EXTENSIONS, "image")
        found = _own_splits(labelled, cfg, sizes, rng, seed)
        decoded = {split: readers.decode_images(paths, labels, image_size, skipped)
                   for split, (paths, labels) in found.splits.items()}
        for index, cls in enumerate(found.class_names):
            if not any((labels == index).any() for _, labels in decoded.values()):
                raise owndata.DataFileError(f"No image of class {cls!r} under {name} could be read "
                                            f"({len(skipped)} unreadable files skipped in all).")
        owndata.check_every_split(found.class_names, decoded, f"{name} (after skipping {len(skipped)} unreadable files)")
        return ImageData(Path(name).name, found.title, found.source, decoded, batch, seed, found.class_names,
                         image_size, skipped).report(verbose)
    located = _located(name, IMAGE_DATASETS, "image", cfg)
    note = located.note if located else ""
    if located is None or located.root is None:
        found = (offline.digits if name in ("cifar10", "digits") else offline.lfw)(image_size, sizes, rng, note)
    elif located.spec.kind == "pickled_batches":
        found = _cifar(located, image_size, sizes, rng)
    else:
        parts = _class_folder_splits(located, readers.IMAGE_EXTENSIONS, sizes, rng)
        found = Found(name, located.spec.title, located.source,
                      {split: readers.decode_images(*part, image_size, skipped) for split, part in parts.items()},
                      located.spec.class_folders())
    return ImageData(found.name, found.title, found.source, found.splits, batch, seed, found.class_names,
                     image_size, skipped).report(verbose)


def _cifar(located: sources.Located, image_size: int, sizes: dict[str, int | None], rng: np.random.Generator) -> Found:
    """Stratified train/val from CIFAR-10's five training batches, test from its test batch."""
    from kitlib.data import cifar

    x_train, y_train, x_test, y_test, classes = cifar.read_batches(located.root)
    picked = splits.train_val_test(y_train, y_test, sizes, rng)

    def at_size(images: np.ndarray) -> np.ndarray:
        return images if image_size == cifar.SIDE else readers.resized_rgb(images / 255.0, image_size)

    parts = {split: (at_size(x[picked[split]]), y[picked[split]])
             for split, (x, y) in (("train", (x_train, y_train)), ("val", (x_train, y_train)), ("test", (x_test, y_test)))}
    return Found(located.spec.name, located.spec.title, located.source, parts, classes)


def _own_splits(labelled: owndata.Labelled, cfg: runtime.Config, sizes: dict[str, int | None],
                rng: np.random.Generator, seed: int) -> Found:
    """The learner's data split: its own splits kept, the missing ones carved (Found.name is left empty).

    Without split folders or a test file, one pool is split stratified and seeded (test at most 20%, val at
    most 10%); a missing val or test split is carved from train the same way; given splits are kept
    (each subsampled, stratified, to the profile's size).
    """
    classes, parts = labelled.encoded(owndata.MAX_CLASSES.get(cfg.profile))
    if "all" in parts:
        pool = splits.split_pool(*parts["all"], sizes, rng, min_per_class=1)
        how = f"one pool, split stratified with seed {seed} (test at most 20%, validation at most 10%)"
    else:
        pool = {}
        train_examples, train_labels = parts["train"]
        carved = [split for split in ("test", "val") if split not in parts]
        at_most = {split: int(len(train_labels) * {"test": 0.2, "val": 0.1}[split]) for split in carved}
        wanted = [at_most[split] if sizes[split] is None else min(sizes[split], at_most[split]) for split in carved]
        *carved_idx, rest = splits.stratified_split(train_labels, [*wanted, None], rng, 1)
        for split, idx in zip(carved, carved_idx):
            pool[split] = (train_examples[idx], train_labels[idx])
        parts = {**parts, "train": (train_examples[rest], train_labels[rest])}
        for split in splits.SPLITS:
            if split in labelled.parts:
                examples, labels = parts[split]
                (idx,) = splits.stratified_split(labels, [sizes[split]], rng, 1 if sizes[split] else 0)
                pool[split] = (examples[idx], labels[idx])
        how = f"given splits ({', '.join(s for s in splits.SPLITS if s in labelled.parts)}) kept"
        if carved:
            how += f"; {' and '.join(carved)} carved from train, stratified with seed {seed}"
    pool = {split: pool[split] for split in splits.SPLITS}
    owndata.check_every_split(classes, pool, labelled.where)
    title = (f"your data: {Path(labelled.where).name} ({len(classes)} classes: {', '.join(classes[:8])}"
             f"{' ...' if len(classes) > 8 else ''})")
    return Found("", title, f"{labelled.where} ({how})", pool, classes)


def load_unlabelled_text(
    cfg: runtime.Config,
    *,
    limit: int | None = None,
    exclude: Any = (),
    seed: int | None = None,
    verbose: bool = True,
) -> np.ndarray:
    """Review texts without labels for self-supervised pre-training (lesson 03), and say where they came from.

    IMDB's train texts plus `train/unsup/` (50,000 unlabelled reviews) when the official layout has it,
    else the train texts with their labels dropped (rebuilt archives lack unsup/); never IMDB's test
    folder. Without a network: the offline pack's Rotten Tomatoes snippets (plot summaries included) and
    the prose shipped beside them (Hamlet). `exclude` drops texts such as a labelled test split; `limit`
    keeps a seeded random sample (None: all).
    """
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"limit is how many texts to keep, 0 or more, or None for all; got {limit!r}.")
    rng = np.random.default_rng(splits.seed(cfg, seed))
    excluded = {" ".join(str(t).split()) for t in exclude}
    located = sources.locate(manifest.IMDB, cfg)
    if located.root is not None:
        paths = list(readers.class_files(located.root, manifest.IMDB, "train", readers.TEXT_EXTENSIONS)[0])
        unsup = sorted((located.root / "train" / "unsup").glob("*.txt"))
        paths += unsup
        what = ("train/pos, train/neg and train/unsup" if unsup
                else "train/pos and train/neg, labels dropped (no train/unsup/ in this copy)")
        picked = [paths[i] for i in rng.permutation(len(paths))]
        wanted = len(picked) if limit is None else limit
        texts: list[str] = []
        for text in readers.read_texts(np.array(picked[: wanted + len(excluded)], dtype=object)):
            if len(texts) >= wanted:
                break
            if " ".join(text.split()) not in excluded:
                texts.append(text)
        source = f"{manifest.IMDB.title}, {what}, from {located.source}"
    else:
        pool, source = offline.unlabelled_texts()
        candidates = [t for t in pool if t not in excluded]
        order = rng.permutation(len(candidates))[: len(candidates) if limit is None else limit]
        texts = [candidates[i] for i in order]
        source += f", standing in for IMDB, which is not available: {located.source}"
    if verbose:
        print(f"unlabelled text: {len(texts):,} texts, {sum(len(t.split()) for t in texts):,} words\nsource: {source}")
    return np.array(texts, dtype=object)

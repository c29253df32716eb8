"""CIFAR-10's python batches (lesson 11), read with a restricted unpickler: arrays of numbers, nothing else.

The official cifar-10-python.tar.gz holds `cifar-10-batches-py/` with `data_batch_1` ... `data_batch_5`,
`test_batch` and `batches.meta`: Python 2 pickles of dicts whose `data` is a numpy uint8 array. Like
kitlib.data.torchfile, the reader admits only the names those pickles use (numpy's array reconstruction:
`_reconstruct`, `ndarray`, `dtype`), as fresh stand-ins per load that record what the file describes and refuse
anything else; this module then builds each array itself with `np.frombuffer`, after checking its dtype
(numbers only, never objects), shape and byte count. Nothing named in a file runs.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kitlib.data.torchfile import Sealed, UnsafePickleError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
BATCH_FILES = (*TRAIN_BATCHES, "test_batch", "batches.meta")
SIDE = 32  # CIFAR images are 32x32 RGB, stored as 3,072 bytes: the red plane, then green, then blue
NUMERIC_CODES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8")
RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1 and numpy 2 spellings


def _text(value: Any) -> Any:
    """Bytes from a Python 2 pickle (read with encoding="bytes") as text; anything else unchanged."""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


class _DType(Sealed):
    """What `numpy.dtype(code, align, copy)` means in this load: a plain numeric dtype, set once by BUILD."""

    __slots__ = ("dtype", "built")

    def __init__(self, code: str) -> None:
        self.dtype, self.built = np.dtype(code), False

    def __setstate__(self, state: Any) -> None:
        # numpy pickles a plain dtype's state as (3, byte order, None, None, None, -1, -1, 0)
        plain = (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[2:5] == (None,) * 3
                 and state[5:] == (-1, -1, 0))
        order = _text(state[1]) if plain else None
        if self.built or order not in ("|", "<", "="):
            raise UnsafePickleError(f"Refusing dtype state {state!r}: a batch holds plain little-endian numbers "
                                    "(no fields, sub-arrays or a second BUILD).")
        self.built = True

    def __repr__(self) -> str:
        return f"dtype {self.dtype}"


class _Array(Sealed):
    """An array as the file describes it (shape, dtype, bytes); becomes a numpy array only after the checks."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise UnsafePickleError("Refusing an array state that is not numpy's (1, shape, dtype, fortran, bytes), "
                                    "or a second BUILD of the same array.")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 8
                and all(type(n) is int and n >= 0 for n in shape)):
            raise UnsafePickleError(f"Refusing array shape {shape!r}: at most 8 non-negative integers.")
        if not isinstance(dtype, _DType) or not isinstance(raw, bytes) or fortran not in (0, 1):
            raise UnsafePickleError("Refusing an array whose dtype is not a plain number type of this file, or "
                                    "whose data is not bytes.")
        if len(raw) != math.prod(shape) * dtype.dtype.itemsize:
            raise UnsafePickleError(f"Refusing an array of shape {shape} and dtype {dtype.dtype}: it needs "
                                    f"{math.prod(shape) * dtype.dtype.itemsize:,} bytes, the file holds {len(raw):,}.")
        self.array = np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()

    def __repr__(self) -> str:
        return "array"


class _Global(Sealed):
    """A name the stream may use: `ndarray` (only passed on), `dtype` or `_reconstruct` (called by REDUCE)."""

    __slots__ = ("name", "unpickler")

    def __init__(self, name: str, unpickler: "BatchUnpickler") -> None:
        self.name, self.unpickler = name, unpickler

    def __call__(self, *args: Any) -> Any:
        if self.name == "numpy.dtype":
            code, align, copy = (args + (None, None, None))[:3]
            if len(args) != 3 or _text(code) not in NUMERIC_CODES or align not in (0, False) or copy not in (1, True):
                raise UnsafePickleError(f"Refusing numpy.dtype{args!r}: a batch holds numbers "
                                        f"({', '.join(NUMERIC_CODES)}), never objects.")
            return _DType(_text(code))
        if self.name == "_reconstruct":
            if args[:1] != (self.unpickler.ndarray,) or args[1:] not in (((0,), b"b"), ((0,), "b")):
                raise UnsafePickleError(f"Refusing _reconstruct{args!r}: only numpy's empty-array start "
                                        "(ndarray, (0,), b'b') is allowed.")
            return _Array()
        raise UnsafePickleError(f"Refusing to call {self.name}: it is only ever passed to _reconstruct.")

    def __repr__(self) -> str:
        return self.name


class BatchUnpickler(pickle.Unpickler):
    """Admits only numpy's array reconstruction, as fresh stand-ins per load; anything else is refused."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="bytes")
        self.ndarray = _Global("numpy.ndarray", self)
        self._globals = {("numpy", "ndarray"): self.ndarray, ("numpy", "dtype"): _Global("numpy.dtype", self),
                         **{(module, "_reconstruct"): _Global("_reconstruct", self) for module in RECONSTRUCT_MODULES}}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"Refusing to load {module}.{name}: a CIFAR batch only names numpy's array reconstruction "
                "(numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype). The file is not an official "
                "batch; do not open it with pickle."
            ) from None

    def persistent_load(self, saved_id: Any) -> Any:
        raise UnsafePickleError(f"Refusing persistent id {saved_id!r}: a CIFAR batch has none.")


def _materialize(obj: Any, where: str) -> Any:
    """Replace the checked array stand-ins by their arrays; refuse any other stand-in left in the result."""
    if isinstance(obj, _Array) and obj.array is not None:
        return obj.array
    if isinstance(obj, Sealed):
        raise UnsafePickleError(f"Refusing {obj!r} at {where!r}: a batch holds arrays, numbers and text.")
    if isinstance(obj, dict):
        return {_text(k): _materialize(v, f"{where}.{_text(k)}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, f"{where}[{i}]") for i, v in enumerate(obj))
    return obj


def read_pickle(path: Path | str) -> dict[str, Any]:
    """One batch file as a dict with text keys, read with the restricted unpickler (never plain pickle)."""
    try:
        result = BatchUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, ValueError, IndexError, KeyError) as exc:
        raise pickle.UnpicklingError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(result, dict):
        raise pickle.UnpicklingError(f"{path} is not a CIFAR-10 python batch (it holds a {type(result).__name__}).")
    return _materialize(result, Path(path).name)


def read_batch(path: Path | str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels (n,) int64 of one batch, checked against the official format."""
    batch = read_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * SIDE * SIDE):
        raise pickle.UnpicklingError(f"{path}: 'data' must be a uint8 array of shape (n, 3072), "
                                     f"found {getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}.")
    if not (isinstance(labels, list) and len(labels) == len(data)
            and all(type(y) is int and 0 <= y < n_classes for y in labels)):
        raise pickle.UnpicklingError(f"{path}: 'labels' must be a list of {len(data)} integers in 0..{n_classes - 1}.")
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)  # channel planes to height, width, RGB
    return np.ascontiguousarray(images), np.array(labels, dtype=np.int64)


def read_batches(root: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(train images, train labels, test images, test labels, class names) of a `cifar-10-batches-py` folder."""
    root = Path(root)
    meta = read_pickle(root / "batches.meta")
    names = meta.get("label_names")
    if not (isinstance(names, list) and names and all(isinstance(n, bytes) for n in names)):
        raise pickle.UnpicklingError(f"{root / 'batches.meta'}: 'label_names' must be a list of class names.")
    classes = tuple(n.decode("utf-8") for n in names)
    parts = [read_batch(root / name, len(classes)) for name in TRAIN_BATCHES]
    x_test, y_test = read_batch(root / "test_batch", len(classes))
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    return x_train, y_train, x_test, y_test, classes

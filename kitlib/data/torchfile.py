"""A restricted reader for legacy (pre-1.6, non-zip) PyTorch checkpoints: tensor state dicts as numpy arrays.

Lesson 05's offline ImageNet weights (torchvision's MobileNetV2, see kitlib.models.standins) come in this format.
`read_legacy_torch(path)` unpickles with a reader that admits only what a tensor state dict needs; anything
else is refused, nothing named in the file runs, and torch is not needed (nor imported). The file cannot
steer the reader either:

- every tensor is checked against its storage before it is viewed: integer offset, sizes and strides, none
  negative, no more numbers than the storage holds, every element inside it (a bad one is refused by name);
- the classes and functions the stream may name are fresh objects per load that refuse to be modified (the
  BUILD opcode calls their `__setstate__`), so a rejected file cannot change how later files load.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The checkpoint names, builds or points at something a tensor state dict does not: refused, nothing ran."""


class Sealed:
    """An object the pickle stream may use but not modify: BUILD calls `__setstate__`, which refuses."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"Refusing to modify {self!r}: a tensor state dict never sets attributes on it.")


class _StorageType(Sealed):
    """What `torch.FloatStorage` and its kin mean in this load: a name and a numpy dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: Any) -> None:
        self.name, self.dtype = name, np.dtype(dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Function(Sealed):
    """A function the stream may call (REDUCE), standing in for the name it uses."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name, self.function = name, function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    def __repr__(self) -> str:
        return self.name


class _Storage(Sealed):
    """A flat numpy array standing in for a torch storage; its bytes follow the main pickle."""

    __slots__ = ("key", "numel", "dtype", "array")

    def __init__(self, key: str, numel: int, dtype: np.dtype) -> None:
        self.key, self.numel, self.dtype = key, numel, dtype
        self.array: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"storage {self.key}"


class _LazyTensor(Sealed):
    """A tensor as the file describes it: a storage, an offset, sizes and strides (checked before viewing)."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage: _Storage, offset: Any, shape: Any, stride: Any) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __repr__(self) -> str:
        return f"tensor on {self.storage!r}"

    def materialize(self, name: str) -> np.ndarray:
        """The tensor's numbers as a fresh numpy array, after checking that its view fits inside its storage."""
        storage = self.storage
        if storage.array is None:
            raise pickle.UnpicklingError(f"tensor {name!r}: its {storage!r} was never written in the file")
        _check_view(name, storage, self.offset, self.shape, self.stride)
        if math.prod(self.shape) == 0:
            return np.zeros(self.shape, dtype=storage.array.dtype)
        itemsize = storage.array.itemsize
        strides = [step * itemsize if size > 1 else 0 for size, step in zip(self.shape, self.stride)]  # 0: unused
        return np.lib.stride_tricks.as_strided(storage.array[self.offset:], shape=self.shape, strides=strides,
                                               writeable=False).copy()


def _is_count(value: Any) -> bool:
    """True for a plain non-negative int (bool is an int in Python, but no count)."""
    return type(value) is int and value >= 0


def _check_view(name: str, storage: _Storage, offset: Any, shape: Any, stride: Any) -> None:
    """Refuse a view unless its integer offset, sizes and strides address only elements inside its storage."""
    where = (f"tensor {name!r} (offset {offset!r}, size {shape!r}, stride {stride!r}) "
             f"on a {storage.numel}-element {storage!r}")
    if not (_is_count(offset) and isinstance(shape, tuple) and isinstance(stride, tuple)
            and all(map(_is_count, shape + stride)) and len(shape) == len(stride) <= 64):
        raise UnsafePickleError(f"Refusing {where}: offset, sizes and strides must be non-negative integers, "
                                "as many strides as sizes (at most 64).")
    count = math.prod(shape)
    if count > storage.numel:
        raise UnsafePickleError(f"Refusing {where}: it would hold {count:,} numbers, more than its storage has.")
    if count == 0:  # nothing to read, but numpy must be able to hold the shape without overflow
        if offset > storage.numel or math.prod(max(size, 1) for size in shape) * storage.dtype.itemsize >= 2**63:
            raise UnsafePickleError(f"Refusing {where}: an empty tensor past its storage or too large to hold.")
        return
    last = offset + sum((size - 1) * step for size, step in zip(shape, stride))
    if last >= storage.numel:
        raise UnsafePickleError(f"Refusing {where}: it reaches element {last:,}, outside its storage.")


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only what a tensor state dict needs, as fresh objects per load; anything else raises UnsafePickleError."""

    def __init__(self, file: Any, storages: dict[str, _Storage] | None = None) -> None:
        super().__init__(file)
        self.storages = storages if storages is not None else {}
        self._storage_types = {name: _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()}
        self._globals: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): _Function("collections.OrderedDict", collections.OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2"): _Function("torch._utils._rebuild_tensor_v2", self._rebuild_tensor),
            **{("torch", name): storage_type for name, storage_type in self._storage_types.items()},
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"Refusing to load {module}.{name}: this reader only admits a tensor state dict "
                "(collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage). "
                "The file is not a plain weights file; do not load it with pickle or torch.load."
            ) from None

    def persistent_load(self, saved_id: Any) -> Any:
        if not (isinstance(saved_id, tuple) and len(saved_id) == 6 and saved_id[0] in ("storage", b"storage")):
            raise UnsafePickleError(f"Refusing persistent id {saved_id!r}: only tensor storages are allowed.")
        _, storage_type, key, _location, numel, view = saved_id
        if not any(storage_type is known for known in self._storage_types.values()) or view is not None:
            raise UnsafePickleError(f"Refusing storage {saved_id!r}: unknown storage type or a storage view.")
        if not (isinstance(key, str) and _is_count(numel)):
            raise UnsafePickleError(f"Refusing storage {saved_id!r}: its key must be text and its size a count.")
        storage = self.storages.setdefault(key, _Storage(key, numel, storage_type.dtype))
        if (storage.numel, storage.dtype) != (numel, storage_type.dtype):
            raise UnsafePickleError(f"Refusing storage {key}: declared twice, with different types or sizes.")
        return storage

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _LazyTensor:
        """The stand-in for torch._utils._rebuild_tensor_v2: remembers where the tensor's numbers live."""
        if not any(storage is known for known in self.storages.values()):
            raise UnsafePickleError("Refusing a tensor that is not rebuilt from one of this file's storages.")
        return _LazyTensor(storage, offset, size, stride)


def _materialize(obj: Any, name: str = "") -> Any:
    """Replace the lazy tensors in a (nested) state dict by numpy arrays; `name` is the path to `obj`."""
    if isinstance(obj, _LazyTensor):
        return obj.materialize(name)
    if isinstance(obj, Sealed):
        raise UnsafePickleError(f"Refusing {obj!r} at {name!r}: a state dict holds tensors, not storages or classes.")
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v, f"{name}.{k}" if name else str(k))) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, f"{name}[{i}]") for i, v in enumerate(obj))
    return obj


def _load(unpickler: RestrictedUnpickler, path: Path | str) -> Any:
    """One pickle of the file; a malformed stream (not a refused one) says which file it was."""
    try:
        return unpickler.load()
    except (EOFError, TypeError, AttributeError, ValueError, IndexError, KeyError) as exc:
        raise pickle.UnpicklingError(f"{path} is not a valid legacy PyTorch state dict ({exc}).") from exc


def read_legacy_torch(path: Path | str) -> collections.OrderedDict:
    """A legacy PyTorch state dict as {name: numpy array}, read with a restricted unpickler (lesson 05's weights)."""
    data = Path(path).read_bytes()
    if data[:2] == b"PK":
        raise UnsafePickleError(f"{path} is a zip-format (PyTorch >= 1.6) checkpoint; this reader reads the "
                                "legacy format.")
    f = io.BytesIO(data)
    if _load(RestrictedUnpickler(f), path) != LEGACY_MAGIC:
        raise pickle.UnpicklingError(f"{path} is not a legacy PyTorch checkpoint (bad magic number).")
    protocol = _load(RestrictedUnpickler(f), path)
    if protocol != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"{path}: unsupported legacy protocol {protocol!r}.")
    sys_info = _load(RestrictedUnpickler(f), path)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError(f"{path} has no system info or was written on a big-endian machine; "
                                     "not supported.")
    storages: dict[str, _Storage] = {}
    result = _load(RestrictedUnpickler(f, storages), path)
    keys = _load(RestrictedUnpickler(f), path)
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys) and sorted(keys) == sorted(storages)):
        raise pickle.UnpicklingError(f"{path} is corrupt: its storage list is not the storages its tensors use.")
    for key in keys:
        storage = storages[key]
        size = storage.numel * storage.dtype.itemsize
        header = f.read(8)
        raw = f.read(size) if len(header) == 8 else b""
        if len(header) != 8 or struct.unpack("<q", header)[0] != storage.numel or len(raw) != size:
            raise pickle.UnpicklingError(f"{path} is truncated or corrupt (storage {key}).")
        storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return _materialize(result)

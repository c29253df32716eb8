"""kitlib.data.torchfile: the restricted legacy-PyTorch reader refuses code, out-of-bounds views and poisoning."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import pickle
import struct
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from kitlib.data import pack, torchfile
from kitlib.models import standins

needs_weights = pytest.mark.skipif(
    pack.package_dir(standins.MOBILENET_V2_ASSET[0]) is None, reason="offline pack not installed (python -m kitlib pack)"
)
HEADER = (torchfile.LEGACY_MAGIC, torchfile.LEGACY_PROTOCOL, {"little_endian": True})


# --- writing legacy checkpoints without torch ----------------------------------------------------


@contextlib.contextmanager
def torch_names() -> Iterator[None]:
    """Modules named torch and torch._utils while a test writes a file, so pickle writes the names torch writes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("only written, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2, torch._utils = _rebuild_tensor_v2, utils
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@dataclasses.dataclass(eq=False)
class Storage:
    key: str
    values: np.ndarray  # float32 or int64
    numel: int | None = None  # what the file claims, when it lies

    def persistent_id(self) -> tuple:
        kind = "LongStorage" if self.values.dtype == np.int64 else "FloatStorage"
        numel = self.values.size if self.numel is None else self.numel
        return ("storage", getattr(sys.modules["torch"], kind), self.key, "cpu", numel, None)


@dataclasses.dataclass(eq=False)
class Tensor:
    storage: Storage
    offset: Any
    size: Any
    stride: Any

    def __reduce__(self) -> tuple:
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


class CheckpointPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.persistent_id() if isinstance(obj, Storage) else None


def write_checkpoint(path: Path, state: dict[str, Tensor]) -> Path:
    """A legacy (pre-1.6) PyTorch file as torch.save wrote it: header, state dict, storage keys, storage bytes."""
    storages = {t.storage.key: t.storage for t in state.values()}
    with torch_names(), open(path, "wb") as f:
        for part in HEADER:
            pickle.dump(part, f, protocol=2)
        CheckpointPickler(f, protocol=2).dump(collections.OrderedDict(state))
        pickle.dump(sorted(storages), f, protocol=2)
        for key in sorted(storages):
            values = storages[key].values
            f.write(struct.pack("<q", values.size) + values.astype(values.dtype.newbyteorder("<")).tobytes())
    return path


def legacy_file(path: Path, payload: object) -> Path:
    """A file laid out like a legacy PyTorch checkpoint (magic, protocol, sys info) with `payload` as its object."""
    with open(path, "wb") as f:
        for part in (*HEADER, payload, []):
            pickle.dump(part, f, protocol=2)
    return path


def good_checkpoint(path: Path) -> Path:
    """A small state dict with a contiguous, a strided, a scalar and an empty tensor, and an int64 buffer."""
    weights = Storage("0", np.arange(12, dtype=np.float32))
    return write_checkpoint(path, {
        "conv.weight": Tensor(weights, 0, (3, 4), (4, 1)),
        "conv.transposed": Tensor(weights, 2, (2, 3), (1, 2)),
        "conv.scalar": Tensor(weights, 5, (), ()),
        "conv.empty": Tensor(weights, 12, (0,), (1,)),
        "bn.num_batches_tracked": Tensor(Storage("1", np.array([7], dtype=np.int64)), 0, (), ()),
    })


def test_reads_tensors_and_strided_views_as_numpy(tmp_path: Path) -> None:
    state = torchfile.read_legacy_torch(good_checkpoint(tmp_path / "good.pth"))
    assert list(state) == ["conv.weight", "conv.transposed", "conv.scalar", "conv.empty", "bn.num_batches_tracked"]
    assert np.array_equal(state["conv.weight"], np.arange(12).reshape(3, 4))
    assert np.array_equal(state["conv.transposed"], [[2, 4, 6], [3, 5, 7]])
    assert state["conv.scalar"].shape == () and state["conv.scalar"] == 5.0
    assert state["conv.empty"].shape == (0,) and state["bn.num_batches_tracked"].dtype == np.int64


# --- hostile views: every tensor is checked against its storage --------------------------------------


@pytest.mark.parametrize("offset, size, stride, message", [
    (0, (4096,), (1,), "4,096 numbers, more than its storage has"),
    (0, (2**32, 2**32), (0, 0), "more than its storage has"),
    (0, (4,), (-1,), "non-negative integers"),
    (0, (4,), (2**40,), "reaches element 3,298,534,883,328, outside its storage"),
    (10**9, (1,), (1,), "reaches element 1,000,000,000, outside its storage"),
    (4, (1,), (1,), "reaches element 4, outside"),
    (-1, (1,), (1,), "non-negative integers"),
    (0.0, (1,), (1,), "non-negative integers"),
    (0, (True,), (1,), "non-negative integers"),
    (0, (4,), (), "as many strides as sizes"),
    (0, (1,) * 65, (1,) * 65, "at most 64"),
    (0, (0, 2**62), (1, 1), "too large to hold"),
], ids=["oversized", "overflowing-count", "negative-stride", "huge-stride", "huge-offset", "offset-at-end",
        "negative-offset", "float-offset", "bool-size", "stride-count", "too-many-dims", "huge-empty"])
def test_views_outside_their_storage_are_refused_by_name(tmp_path: Path, offset, size, stride, message) -> None:
    path = write_checkpoint(tmp_path / "bad.pth", {
        "features.0.weight": Tensor(Storage("0", np.arange(4, dtype=np.float32)), offset, size, stride)})
    with pytest.raises(torchfile.UnsafePickleError, match=r"tensor 'features\.0\.weight' .*" + message):
        torchfile.read_legacy_torch(path)


def test_a_storage_declared_twice_differently_is_refused(tmp_path: Path) -> None:
    first, second = Storage("0", np.zeros(4, np.float32)), Storage("0", np.zeros(8, np.float32))
    path = write_checkpoint(tmp_path / "twice.pth", {"a": Tensor(first, 0, (4,), (1,)), "b": Tensor(second, 0, (8,), (1,))})
    with pytest.raises(torchfile.UnsafePickleError, match="declared twice"):
        torchfile.read_legacy_torch(path)


def test_storage_bytes_must_match_what_the_pickle_declared(tmp_path: Path) -> None:
    liar = Storage("0", np.zeros(4, np.float32), numel=4096)  # declares 4,096 numbers, writes 4
    path = write_checkpoint(tmp_path / "short.pth", {"w": Tensor(liar, 0, (4096,), (1,))})
    with pytest.raises(pickle.UnpicklingError, match="truncated or corrupt"):
        torchfile.read_legacy_torch(path)
    good = good_checkpoint(tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[:-5])
    with pytest.raises(pickle.UnpicklingError, match="truncated or corrupt"):
        torchfile.read_legacy_torch(tmp_path / "cut.pth")


# --- poisoning: a rejected file cannot change later loads ---------------------------------------------


def build_on(global_name: str) -> bytes:
    """A pickle that applies BUILD (None, {"dtype": "poison"}) to a global: setattr on it, if allowed."""
    module, name = global_name.rsplit(".", 1)
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"N}X\x05\x00\x00\x00dtypeX\x06\x00\x00\x00poison"
            b"s\x86b.")


POISONED = ["torch.FloatStorage", "torch.LongStorage", "torch._utils._rebuild_tensor_v2", "collections.OrderedDict"]


def write_poison(path: Path, global_name: str) -> Path:
    with open(path, "wb") as f:
        for part in HEADER:
            pickle.dump(part, f, protocol=2)
        f.write(build_on(global_name))
    return path


@pytest.mark.parametrize("global_name", POISONED)
def test_the_stream_cannot_modify_what_it_may_name(tmp_path: Path, global_name: str) -> None:
    with pytest.raises(torchfile.UnsafePickleError, match=f"Refusing to modify {global_name}"):
        torchfile.read_legacy_torch(write_poison(tmp_path / "poison.pth", global_name))
    state = torchfile.read_legacy_torch(good_checkpoint(tmp_path / "good.pth"))
    assert state["conv.weight"].dtype == np.float32 and state["bn.num_batches_tracked"].dtype == np.int64


@needs_weights
def test_a_rejected_file_cannot_poison_the_real_weights(tmp_path: Path) -> None:
    for global_name in POISONED:
        with pytest.raises(torchfile.UnsafePickleError):
            torchfile.read_legacy_torch(write_poison(tmp_path / "poison.pth", global_name))
    state = torchfile.read_legacy_torch(pack.asset(*standins.MOBILENET_V2_ASSET))
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280) and state["classifier.1.weight"].dtype == np.float32
    assert all(isinstance(v, np.ndarray) for v in state.values())


def test_a_bare_storage_class_is_no_tensor(tmp_path: Path) -> None:
    with torch_names():
        path = legacy_file(tmp_path / "class.pth", {"x": sys.modules["torch"].FloatStorage})
    with pytest.raises(torchfile.UnsafePickleError, match=r"Refusing torch\.FloatStorage at 'x'"):
        torchfile.read_legacy_torch(path)


# --- code execution ----------------------------------------------------------------------------------


class Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = legacy_file(tmp_path / "evil.pth", {"weight": Exploit(marker)})
    with pytest.raises(torchfile.UnsafePickleError, match=r"Refusing to load (posix|os|nt)\.system.*tensor state dict"):
        torchfile.read_legacy_torch(path)
    assert not marker.exists(), "the command ran"
    # The same object as the very first pickle (where the magic number belongs) is refused too.
    (tmp_path / "evil2.pth").write_bytes(pickle.dumps(Exploit(marker), protocol=2))
    with pytest.raises(torchfile.UnsafePickleError, match="Refusing to load"):
        torchfile.read_legacy_torch(tmp_path / "evil2.pth")
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals_and_odd_persistent_ids(tmp_path: Path) -> None:
    with pytest.raises(torchfile.UnsafePickleError, match=r"Refusing to load (__builtin__|builtins)\.eval"):
        torchfile.read_legacy_torch(legacy_file(tmp_path / "eval.pth", {"x": eval}))
    with pytest.raises(torchfile.UnsafePickleError, match="only tensor storages"):
        torchfile.RestrictedUnpickler(io.BytesIO(b"\x80\x02X\x03\x00\x00\x00abcQ.")).load()


@needs_weights
def test_reads_the_real_checkpoint_as_numpy() -> None:
    state = torchfile.read_legacy_torch(pack.asset(*standins.MOBILENET_V2_ASSET))
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280) and state["classifier.1.weight"].dtype == np.float32

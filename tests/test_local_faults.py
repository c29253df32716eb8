"""A local fault or a bug is never turned into "skipped" or "unavailable": only a broken file is skipped."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kitlib.data import loaders, manifest, readers
from conftest import smoke


def photos(root: Path, per_folder: int = 3) -> Path:
    """A tiny cats_and_dogs_filtered folder of JPEGs."""
    for split in ("train", "validation"):
        for value, name in ((40, "cats"), (190, "dogs")):
            (root / "cats_and_dogs_filtered" / split / name).mkdir(parents=True)
            for i in range(per_folder):
                Image.fromarray(np.full((20, 20, 3), value + i, np.uint8)).save(
                    root / "cats_and_dogs_filtered" / split / name / f"{name[:-1]}.{i}.jpg", "JPEG")
    return root


@pytest.mark.parametrize("fault", [PermissionError(errno.EACCES, "Permission denied"),
                                   OSError(errno.EIO, "Input/output error"),
                                   ValueError("a bug in the kit's own code")], ids=["permission", "io", "bug"])
def test_a_disk_fault_or_a_bug_is_raised_not_skipped(kit_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                     fault: Exception) -> None:
    monkeypatch.setenv("KITLIB_DATA_DIR", str(photos(kit_env / "share")))

    def failing(path: Path, size: int) -> np.ndarray:
        raise fault

    monkeypatch.setattr(readers, "read_image", failing)
    with pytest.raises(type(fault), match=str(fault.args[-1])):
        loaders.load_images("cats_and_dogs", smoke(), image_size=16, val_size=1, verbose=False)


def test_a_broken_file_is_still_skipped(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    share = photos(kit_env / "share")
    (share / "cats_and_dogs_filtered" / "validation" / "cats" / "cat.9.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    data = loaders.load_images("cats_and_dogs", smoke(), image_size=16, val_size=1, verbose=False)
    assert [Path(p).name for p in data.skipped] == ["cat.9.jpg"]


def test_an_empty_class_folder_is_refused(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    share = photos(kit_env / "share")
    for photo in (share / "cats_and_dogs_filtered" / "train" / "dogs").iterdir():
        photo.unlink()
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    with pytest.raises(manifest.LayoutError, match="train/dogs holds no images"):
        loaders.load_images("cats_and_dogs", smoke(), image_size=16, val_size=1, verbose=False)

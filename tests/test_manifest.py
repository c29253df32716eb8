"""data/: the manifest kitlib reads its registered datasets from, and the checkout's default data folder."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kitlib.data import manifest as registered
from kitlib import runtime

ROOT = Path(__file__).resolve().parents[1]


def test_registered_datasets_come_from_the_manifest() -> None:
    manifest = json.loads((ROOT / "data" / "datasets.json").read_text(encoding="utf-8"))
    assert set(registered.ARCHIVES) == {k for k in manifest if not k.startswith("_")} == {"imdb", "cats_and_dogs", "cifar10"}
    assert registered.IMDB.sha256 == manifest["imdb"]["sha256"] and registered.IMDB.size == 84_125_825
    assert registered.CATS_AND_DOGS.sha256 is None and registered.CATS_AND_DOGS.layout[0] == "train/cats"
    assert (ROOT / "kitlib" / "data" / "datasets.json").resolve() == (ROOT / "data" / "datasets.json").resolve()


def test_a_changed_manifest_changes_what_is_checked(tmp_path: Path) -> None:
    entry = json.loads((ROOT / "data" / "datasets.json").read_text(encoding="utf-8"))["imdb"]
    (tmp_path / "m.json").write_text(json.dumps({"imdb": {**entry, "size": 12}}), encoding="utf-8")
    assert registered.read_manifest(tmp_path / "m.json")["imdb"].size == 12


def test_data_dir_defaults_to_the_checkout_and_an_empty_value_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITLIB_DATA_DIR", raising=False)
    assert runtime.data_dir() == ROOT / "data"
    monkeypatch.setenv("KITLIB_DATA_DIR", "")
    assert runtime.data_dir() is None
    monkeypatch.setenv("KITLIB_DATA_DIR", "/somewhere")
    assert runtime.data_dir() == Path("/somewhere")


def test_only_readme_and_manifest_of_data_are_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert sorted(tracked) == ["data/README.md", "data/datasets.json"]
    ignored = subprocess.run(["git", "check-ignore", "data/aclImdb_v1.tar.gz", "data/my_reviews.csv"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert ignored == ["data/aclImdb_v1.tar.gz", "data/my_reviews.csv"]


def test_the_wheel_carries_the_manifest(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                           str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("kitlib-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        manifest = json.loads(zf.read("kitlib/data/datasets.json"))
    assert manifest["imdb"]["url"].endswith("aclImdb_v1.tar.gz")

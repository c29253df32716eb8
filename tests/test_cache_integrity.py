"""Cache entries verify themselves: bytes flipped or cut in each kind of entry are found, and the entry is rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import smoke

import kitlib
from kitlib import integrity
from kitlib.data import pack
from kitlib.models import finetuned, hub, standins, textmodels


def flip(path: Path, offset: int, length: int = 1) -> None:
    """Invert `length` bytes of a file in place from `offset`."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(length)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def test_a_record_finds_flipped_cut_missing_and_extra_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "sub" / "graph.pb").write_bytes(b"graph" * 100)
    assert integrity.problem(tmp_path) is not None and "missing" in integrity.problem(tmp_path)
    integrity.record(tmp_path)
    assert integrity.problem(tmp_path) is None
    flip(tmp_path / "weights.bin", 5000)
    assert "weights.bin does not have the sha256" in integrity.problem(tmp_path)
    flip(tmp_path / "weights.bin", 5000)
    assert integrity.problem(tmp_path) is None
    with open(tmp_path / "sub" / "graph.pb", "r+b") as handle:
        handle.truncate(10)
    assert "graph.pb has 10 bytes where 500 were written" in integrity.problem(tmp_path)
    (tmp_path / "sub" / "graph.pb").unlink()
    assert "graph.pb is missing" in integrity.problem(tmp_path)
    (tmp_path / "sub" / "graph.pb").write_bytes(b"graph" * 100)
    (tmp_path / "stray.txt").write_text("x")
    assert "not written with it: stray.txt" in integrity.problem(tmp_path)


def test_each_file_is_hashed_once_per_process_while_it_stays_the_same(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w" * 10_000)
    integrity.record(tmp_path)
    assert integrity.problem(tmp_path) is None

    def no_hashing(path: Path) -> str:
        raise AssertionError("hashed again although the file did not change")

    monkeypatch.setattr(integrity.downloads, "sha256_of", no_hashing)
    assert integrity.problem(tmp_path) is None
    monkeypatch.undo()
    flip(tmp_path / "weights.bin", 100)  # a write: new modification time, so it is hashed again
    assert "does not have the sha256" in integrity.problem(tmp_path)


# --- the MiniLM preset ----------------------------------------------------------------------------


@pytest.mark.skipif(pack.package_dir(textmodels.MINILM_ASSET[0]) is None, reason="offline pack not installed")
def test_4_kib_flipped_in_the_minilm_preset_is_rebuilt_not_loaded(kit_env: Path) -> None:
    preset = textmodels.minilm_dir()
    weights = preset / "model.safetensors"
    good = integrity.sha256(weights)
    flip(weights, weights.stat().st_size // 2, 4096)
    assert textmodels.minilm_dir() == preset
    assert integrity.sha256(weights) == good, "written again from the pack"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size - 1000)
    textmodels.minilm_dir()
    assert integrity.sha256(weights) == good
    (preset / integrity.RECORD).unlink()  # a preset written before records existed, or not finished
    textmodels.minilm_dir()
    assert integrity.problem(preset) is None


# --- exported stand-ins ---------------------------------------------------------------------------


@pytest.fixture
def fake_stand_in(kit_env: Path, monkeypatch) -> tuple[list[Path], str]:
    """A registered model whose stand-in export writes two small files and counts its runs."""
    exports: list[Path] = []

    def export(folder: Path) -> dict[str, str]:
        if getattr(export, "fail", False):
            raise FileNotFoundError("the offline pack is gone")
        exports.append(folder)
        (folder / "encoder" / "variables").mkdir(parents=True)
        (folder / "encoder" / "saved_model.pb").write_bytes(b"\x08\x01" * 500)
        (folder / "encoder" / "variables" / "variables.data-00000-of-00001").write_bytes(np.arange(4096.0).tobytes())
        return {"encoder": "encoder"}

    model = hub.HubModel("fake", "text", {}, standins.StandIn("fake-stand-in", "a fake stand-in", export))
    monkeypatch.setitem(hub.MODELS, "fake", model)
    return exports, export


def test_a_damaged_stand_in_export_is_exported_again(fake_stand_in, kit_env: Path) -> None:
    exports, export = fake_stand_in
    first = hub.resolve_model("fake", smoke())
    assert len(exports) == 1 and "exported to" in first.source
    assert "cached in" in hub.resolve_model("fake", smoke()).source and len(exports) == 1
    folder = Path(first.handles["encoder"]).parent
    variables = folder / "encoder" / "variables" / "variables.data-00000-of-00001"
    flip(variables, 1000, 64)
    assert "exported to" in hub.resolve_model("fake", smoke()).source and len(exports) == 2
    with open(folder / "encoder" / "saved_model.pb", "r+b") as handle:
        handle.truncate(7)
    hub.resolve_model("fake", smoke())
    assert len(exports) == 3 and integrity.problem(folder) is None
    (folder / integrity.RECORD).unlink()
    hub.resolve_model("fake", smoke())
    assert len(exports) == 4


def test_a_damaged_stand_in_that_cannot_be_exported_again_is_named(fake_stand_in, kit_env: Path) -> None:
    exports, export = fake_stand_in
    folder = Path(hub.resolve_model("fake", smoke()).handles["encoder"]).parent
    flip(folder / "encoder" / "saved_model.pb", 3)
    export.fail = True
    with pytest.raises(hub.ModelUnavailableError, match=f"The cached copy in {folder} is damaged .*saved_model.pb"):
        hub.resolve_model("fake", smoke())


# --- fine-tuned classifiers -----------------------------------------------------------------------


@pytest.fixture
def trained(kit_env: Path, monkeypatch) -> tuple[list[int], kitlib.runtime.Config]:
    """classifier() with a tiny model in place of the training; counts the trainings."""
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    runs: list[int] = []

    def train(kind: str, cfg) -> tuple[keras.Model, dict]:
        runs.append(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
        return model, {"kind": kind, "dataset": "tiny", "backbone": "none", "val_accuracy": 0.5, "train_seconds": 0.0}

    monkeypatch.setattr(finetuned, "_train", train)
    return runs, kitlib.setup(verbose=False)


def test_a_fine_tuned_model_is_checked_against_its_note(trained) -> None:
    runs, cfg = trained
    model, info = finetuned.classifier("text", cfg, verbose=False)
    path = finetuned._path("text", cfg)
    note = json.loads(path.with_suffix(".json").read_text())
    assert note[finetuned.CHECKSUM] == integrity.describe(path) and finetuned.CHECKSUM not in info
    _, info = finetuned.classifier("text", cfg, verbose=False)
    assert runs == [1] and info["source"].startswith("cached fine-tuned model")
    flip(path, path.stat().st_size // 2, 32)
    _, info = finetuned.classifier("text", cfg, verbose=False)
    assert runs == [1, 1] and info["source"].startswith("fine-tuned now")
    assert finetuned._cached(path)[2] is None


def test_a_keras_file_left_without_its_note_is_trained_again(trained) -> None:
    runs, cfg = trained
    finetuned.classifier("image", cfg, verbose=False)
    path = finetuned._path("image", cfg)
    path.with_suffix(".json").unlink()  # killed between the two writes
    assert "is missing (its writer was stopped" in finetuned._cached(path)[2]
    _, info = finetuned.classifier("image", cfg, verbose=False)
    assert runs == [1, 1] and path.with_suffix(".json").exists()
    path.with_suffix(".json").write_text(json.dumps({"kind": "image"}))  # a note from before checksums
    finetuned.classifier("image", cfg, verbose=False)
    assert runs == [1, 1, 1]


def test_a_sound_file_that_does_not_load_names_the_entry_and_how_to_clear_it(trained) -> None:
    runs, cfg = trained
    path = finetuned._path("text", cfg)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a keras archive")
    path.with_suffix(".json").write_text(json.dumps({finetuned.CHECKSUM: integrity.describe(path)}))
    with pytest.raises(integrity.DamagedEntry, match=f"{path} has the checksum .* does not load.*rm -rf"):
        finetuned.classifier("text", cfg, verbose=False)
    assert runs == []

"""`finetune --out` never clobbers: a staged folder swapped in whole, refused over files the kit did not write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import smoke_kit

import kitlib
from kitlib import __main__ as cli
from kitlib import _fs
from kitlib.models import recipe

ROWS = (("pos", "a wonderful moving film"), ("neg", "a dull boring mess"), ("plot", "the story follows a man"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, exported_stand_ins: Path):
    """One real smoke run of the recipe on a small CSV: (source, its Run)."""
    root = tmp_path_factory.mktemp("finetune_output")
    with smoke_kit(root, exported_stand_ins):
        source = root / "mine.csv"
        source.write_text("review,label\n" + "\n".join(f'"{text} {i}",{label}' for i in range(25)
                                                       for label, text in ROWS) + "\n", encoding="utf-8")
        cfg = kitlib.setup(verbose=False)
        data = kitlib.load_text(source, cfg, verbose=False)
        yield source, recipe.run(data, cfg, verbose=False)


@pytest.fixture
def finetune(trained, monkeypatch: pytest.MonkeyPatch):
    """`python -m kitlib finetune SOURCE --out OUT ...` with the module's run standing in for training."""
    source, result = trained
    calls = []

    def run(data, cfg, settings):
        calls.append(settings)
        assert data.class_names == result.class_names and list(data.labels("test")) == list(result.y_test)
        return result

    monkeypatch.setattr(recipe, "run", run)

    def call(out: Path, *extra: str) -> int:
        return cli.main(["finetune", str(source), "--task", "text", "--profile", "smoke", "--out", str(out), *extra])

    call.trainings = calls
    return call


def test_a_folder_it_did_not_write_is_refused_unless_forced(finetune, tmp_path) -> None:
    out = tmp_path / "mine"
    (out / "serving").mkdir(parents=True)
    (out / "serving" / "my_client.py").write_text("print('mine')\n")
    (out / "notes.txt").write_text("keep me\n")
    with pytest.raises(SystemExit, match=r"not empty and was not written by the kit .*notes.txt, serving.*--force"):
        finetune(out)
    assert not finetune.trainings, "refused before any training"
    assert (out / "serving" / "my_client.py").read_text() == "print('mine')\n"
    assert finetune(out, "--force") == 0
    assert not (out / "notes.txt").exists() and (out / "serving" / "saved_model.pb").is_file()


def test_its_own_folder_is_replaced_whole_but_not_over_files_added_since(finetune, tmp_path) -> None:
    out = tmp_path / "out"
    assert finetune(out) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([recipe.MARKER, "confusion_matrix.png", "model.keras", "report.md", "serving"])
    assert finetune(out) == 0, "a folder the kit wrote is replaced by the next run"
    (out / "my_client.py").write_text("print('mine')\n")
    with pytest.raises(SystemExit, match=r"holds files the kit did not write there \(my_client.py\)"):
        finetune(out)
    assert (out / "my_client.py").exists() and len(finetune.trainings) == 2


def test_an_unwritable_out_is_found_before_training(finetune, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    with pytest.raises(SystemExit, match="Could not create a folder in .*a_file"):
        finetune(blocker / "out")
    assert not finetune.trainings


def test_a_failure_before_the_end_leaves_the_previous_run_whole(finetune, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    assert finetune(out) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("killed while writing the report")

    monkeypatch.setattr(recipe, "write_report", broken)
    with pytest.raises(RuntimeError, match="killed"):
        finetune(out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "report, model and serving export all still come from the first run"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no staging left behind"


def test_stale_staging_of_a_killed_run_is_cleaned(finetune, tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.{_fs.STAGING_MARK}{dead.pid}.x1y2"
    (stale / "serving").mkdir(parents=True)
    (stale / "serving" / "variables.data").write_bytes(os.urandom(1024))
    assert finetune(tmp_path / "out") == 0
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_run_into_the_same_folder_is_refused(finetune, tmp_path) -> None:
    out = tmp_path / "out"
    with _fs.one_at_a_time(out.absolute()):  # another run holds the folder
        with pytest.raises(SystemExit, match="Another run is writing .*out now"):
            finetune(out)
    assert not out.exists() and not finetune.trainings


def test_out_may_not_overlap_the_data(finetune, trained) -> None:
    source, _ = trained
    with pytest.raises(SystemExit, match="overlaps your data"):
        finetune(source.parent, "--force")
    assert source.is_file()


def test_the_profile_defaults_are_printed_and_can_be_changed(finetune, tmp_path, capsys) -> None:
    assert finetune(tmp_path / "a") == 0
    printed = capsys.readouterr().out
    assert "smoke profile: --max-examples 240 (default 240; 0 for every example), --seq-length 32 (default 32)" in printed
    assert finetune(tmp_path / "b", "--seq-length", "24", "--max-examples", "0") == 0
    settings = finetune.trainings[-1]
    assert settings.text.seq_length == 24 and settings.text.max_examples is None
    assert "--max-examples all (default 240" in capsys.readouterr().out

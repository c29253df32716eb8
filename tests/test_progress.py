"""kitlib.progress: bars for downloads, extraction and reading; none in smoke, with KITLIB_PROGRESS=0 or unwatched."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import kitlib
from kitlib.data import downloads, pack
from kitlib import progress
from conftest import make_tar, smoke


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a JupyterLab kernel: someone watches (no KITLIB_PROGRESS set)."""
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)


def serve_and_fetch(http_root: tuple[Path, str], tmp_path: Path) -> tuple[bytes, Path]:
    """Serve 3 MB on loopback, download it with its checksum, and extract a 3-file archive."""
    root, base = http_root
    payload = os.urandom(3_000_000)
    (root / "data.bin").write_bytes(payload)
    downloads.download(f"{base}/data.bin", tmp_path / "data.bin", hashlib.sha256(payload).hexdigest(), len(payload))
    archive = make_tar(tmp_path / "three.tar.gz", {"a/1.txt": b"1", "a/2.txt": b"2", "a/3.txt": b"3"})
    downloads.extract(archive, tmp_path / "three")
    return payload, tmp_path / "three"


def test_download_and_extraction_report_progress_to_a_captured_stream(
    http_root: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    payload, folder = serve_and_fetch(http_root, tmp_path)
    err = capsys.readouterr().err  # not a notebook: tqdm's text bar on stderr
    assert (tmp_path / "data.bin").read_bytes() == payload and (folder / "a" / "3.txt").read_text() == "3"
    assert "downloading data.bin: 100%" in err and "2.86M/2.86M" in err, err  # bytes of bytes
    assert "B/s" in err, "the rate is shown"
    assert "verifying sha256 of data.bin" in err
    assert "extracting 3 files and folders from three.tar.gz: 100%" in err and "3/3" in err


def test_smoke_profile_prints_no_bars_even_where_someone_watches(
    http_root: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    watched: None, kit_env: Path
) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    serve_and_fetch(http_root, tmp_path)
    cfg = kitlib.setup(verbose=False)
    assert cfg.fit_verbose == 2
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.fit(np.zeros((64, 2)), np.zeros(64), epochs=2, verbose=cfg.fit_verbose)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "━" not in captured.out and "\r" not in captured.out, "no per-step bar in smoke"
    assert captured.out.count("loss") == 2, "one line per epoch"


def test_cpu_profile_shows_the_fit_bar_where_someone_watches(kit_env: Path, watched: None) -> None:
    assert kitlib.setup(profile="cpu", verbose=False).fit_verbose == "auto"


@pytest.mark.parametrize("setting", ["0", "off"])
def test_kitlib_progress_0_turns_bars_off(
    http_root: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    watched: None, kit_env: Path, setting: str
) -> None:
    monkeypatch.setenv(progress.ENV, setting)
    serve_and_fetch(http_root, tmp_path)
    assert capsys.readouterr() == ("", "")
    assert kitlib.setup(profile="cpu", verbose=False).fit_verbose == 2


def test_nobody_watching_means_no_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # piped: not a terminal, and not a notebook
    assert not progress.enabled("cpu")
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress.enabled("cpu") and progress.enabled("gpu") and not progress.enabled("smoke")


def test_working_shows_the_elapsed_time_while_the_block_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(progress, "TICK", 0.05)
    with progress.working("exporting a stand-in"):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert err.count("exporting a stand-in: 00:00") >= 3, f"refreshed while it ran: {err!r}"
    assert "exporting a stand-in: done: 00:00" in err
    with pytest.raises(KeyboardInterrupt), progress.working("fine-tuning"):
        raise KeyboardInterrupt
    assert "fine-tuning: stopped: 00:00" in capsys.readouterr().err, "an interrupted step does not say done"


@pytest.mark.parametrize("setting, quiet", [("1", False), ("0", True)])
def test_pack_install_shows_pip_output_only_with_progress(
    monkeypatch: pytest.MonkeyPatch, setting: str, quiet: bool
) -> None:
    monkeypatch.setenv(progress.ENV, setting)
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: commands.append(list(args)))  # no real pip
    pack.install()
    assert ("--quiet" in commands[0]) == quiet


def test_reading_a_dataset_shows_a_bar_once_it_is_slow(
    kit_env: Path, served_imdb: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    monkeypatch.setattr(progress, "SLOW", 0)  # a tiny dataset reads in no time
    kitlib.load_text("imdb", smoke(), verbose=False)
    err = capsys.readouterr().err
    assert "downloading aclImdb_v1.tar.gz: 100%" in err and "verifying sha256 of aclImdb_v1.tar.gz" in err
    assert "extracting 47 files and folders from aclImdb_v1.tar.gz: 100%" in err, err
    for split, files in (("train", 15), ("val", 5), ("test", 20)):  # val: a quarter of the 20 training files
        assert f"reading {files} reviews: 100%" in err, (split, err)


def test_exporting_a_stand_in_shows_its_elapsed_time(
    kit_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kitlib.models import hub, standins

    def slow_export(folder: Path) -> dict[str, str]:
        time.sleep(0.3)
        (folder / "model").mkdir()
        return {"feature_vector": "model"}

    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(progress, "TICK", 0.05)
    fake = hub.HubModel("fake", "image", {}, standins.StandIn("fake-stand-in", "a fake stand-in", slow_export))
    monkeypatch.setitem(hub.MODELS, "fake", fake)
    hub.resolve_model("fake", smoke())
    err = capsys.readouterr().err
    assert err.count("exporting the offline stand-in fake-stand-in (once, then cached): 00:00") >= 3, err
    assert "(once, then cached): done" in err
    hub.resolve_model("fake", smoke())
    assert capsys.readouterr().err == "", "a cached stand-in is not exported again"


def test_each_finished_trial_prints_one_line_and_keeps_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras_tuner

    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.SGD(hp.Choice("learning_rate", [0.1, 0.01])), "binary_crossentropy",
                      metrics=["accuracy"])
        return model

    x, y = np.random.default_rng(0).normal(size=(32, 2)), np.arange(32) % 2
    for setting in ("1", "0"):
        monkeypatch.setenv(progress.ENV, setting)
        tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=2, seed=1,
                                         directory=tmp_path, project_name=f"p{setting}")
        assert progress.trial_lines(tuner, "random") is tuner
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("random trial")]
        if setting == "0":
            assert lines == [], err
            continue
        assert [line.split(":")[0] for line in lines] == ["random trial 1/2", "random trial 2/2"], err
        best = max(t.score for t in tuner.oracle.trials.values())
        assert f"best so far {best:.3f}" in lines[-1] and lines[-1].endswith(" s)"), lines


def test_a_long_cell_says_how_long_it_took_before_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], watched: None
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    measured = {"cpu": {"date": "2026-11-29", "machine": "AMD EPYC, 2 cores", "commit": "abc",
                        "cells": {progress.cell_key("slow = 1"): {"lesson": "03", "took": "4.2 min"}}}}
    monkeypatch.setattr(progress, "measured_cells", lambda: measured)
    shell = InteractiveShell.instance()
    try:
        progress.announce_long_cells("cpu")
        progress.announce_long_cells("cpu")  # setup() run twice: still one announcement per cell
        shell.run_cell("slow = 1\n")
        shell.run_cell("quick = 2")
        out = capsys.readouterr().out
        assert out.count("[this cell took") == 1, out
        assert "[this cell took 4.2 min in the cpu profile when measured on AMD EPYC, 2 cores, 2026-11-29]" in out
        progress.announce_long_cells("gpu")  # not measured in this profile: nothing to say
        shell.run_cell("slow = 1")
        assert "[this cell took" not in capsys.readouterr().out
        monkeypatch.setenv("KITLIB_PROFILE", "smoke")
        progress.announce_long_cells("smoke")  # the tests' profile stays quiet, and the old hook goes
        assert not [hook for hook in shell.events.callbacks["pre_run_cell"] if isinstance(hook, progress.CellClock)]
    finally:
        for hook in [h for h in shell.events.callbacks["pre_run_cell"] if isinstance(h, progress.CellClock)]:
            shell.events.unregister("pre_run_cell", hook)
        InteractiveShell.clear_instance()


def test_a_real_kernel_announces_a_measured_cell_before_running_it(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    monkeypatch.setenv(progress.ENV, "1")  # as in JupyterLab, where someone watches
    measured = {"cpu": {"date": "2026-11-29", "machine": "AMD EPYC, 2 cores", "commit": "abc",
                        "cells": {progress.cell_key("slow = sum(range(10))\nprint(slow)"): {"lesson": "03", "took": "4.2 min"}}}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        f"import kitlib\nimport kitlib.progress\nkitlib.progress.measured_cells = lambda: {measured!r}\ncfg = kitlib.setup('cpu', verbose=False)",
        "slow = sum(range(10))\nprint(slow)", "quick = 1")])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = ["".join(o.get("text", "") for o in cell.outputs) for cell in notebook.cells]
    assert outputs[1] == "[this cell took 4.2 min in the cpu profile when measured on AMD EPYC, 2 cores, 2026-11-29]\n45\n"
    assert outputs[2] == "", "an unmeasured cell says nothing"

"""`python -m kitlib bench`: the profile the notebooks ran, a time limit, and failures named with the others reported."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from kitlib.__main__ import main


def write_notebook(path: Path, *sources: str) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def test_bench_labels_by_the_kernel_profile_names_failures_and_stops_hangs(
    kit_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")  # the notebook's own cfg says otherwise: the report must follow it
    good = write_notebook(tmp_path / "a_good.ipynb", "import types\ncfg = types.SimpleNamespace(profile='gpu')")
    failing = write_notebook(tmp_path / "b_failing.ipynb", "raise ValueError('boom')")
    hanging = write_notebook(tmp_path / "c_hanging.ipynb", "import time\ntime.sleep(120)")
    after = write_notebook(tmp_path / "d_after.ipynb", "cfg = None")
    out = tmp_path / "report.md"
    code = main(["bench", str(good), str(failing), str(hanging), str(after), "--out", str(out), "--timeout", "8"])
    report = out.read_text(encoding="utf-8")
    assert code == 1
    assert report.startswith("## gpu profile")
    assert "| a_good.ipynb | gpu |" in report and "| d_after.ipynb | - |" in report
    assert "- b_failing.ipynb failed: ValueError: boom" in report
    assert "- c_hanging.ipynb did not finish within 8 s (--timeout)" in report
    captured = capsys.readouterr()
    assert "b_failing.ipynb, c_hanging.ipynb" in captured.err
    # one line as each notebook starts and one as it ends, with its time
    assert "[1/4] a_good.ipynb: started" in captured.out and "[4/4] d_after.ipynb: finished after" in captured.out
    assert "[3/4] c_hanging.ipynb: stopped, did not finish within 8 s (--timeout) after" in captured.out


def test_bench_names_a_missing_notebook(kit_env: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="No such notebook: .*nope.ipynb"):
        main(["bench", str(tmp_path / "nope.ipynb")])


def test_kit_commit_ignores_executed_copies_but_not_other_changes(tmp_path: Path) -> None:
    import subprocess

    from kitlib.course.runner import kit_commit

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "docs" / "_executed").mkdir(parents=True)
    (tmp_path / "docs" / "_executed" / "00.ipynb").write_text("{}")
    (tmp_path / "kit.py").write_text("x = 1\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "kit"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "docs" / "_executed" / "00.ipynb").write_text('{"executed": true}')
    assert kit_commit(tmp_path / "docs") == head
    (tmp_path / "kit.py").write_text("x = 2\n")
    assert kit_commit(tmp_path) == f"{head}-dirty"


def test_merge_remeasures_a_lesson_into_the_run(kit_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from kitlib.course import runner, tables

    monkeypatch.setenv("KITLIB_PROFILE", "smoke")

    executed = tmp_path / "executed"
    record = "import kitlib\ncfg = kitlib.setup(verbose=False)\nkitlib.record_result(cfg, '{0}', 'test_accuracy', {1}, dataset='d', model='m', seconds=1.0)"
    first = [write_notebook(tmp_path / "01_a.ipynb", record.format("01", 0.5)),
             write_notebook(tmp_path / "02_b.ipynb", record.format("02", 0.6))]
    assert main(["bench", *map(str, first), "--executed", str(executed)]) == 0
    run = json.loads((executed / "run.json").read_text())
    write_notebook(tmp_path / "02_b.ipynb", record.format("02", 0.7))  # the lesson changed: measure it again
    assert main(["bench", str(tmp_path / "02_b.ipynb"), "--executed", str(executed), "--merge"]) == 0
    again = json.loads((executed / "run.json").read_text())
    assert sorted(again["notebooks"]) == ["01_a.ipynb", "02_b.ipynb"], "the other lessons stay"
    assert [(r["lesson"], r["value"]) for r in again["records"]] == [("01", 0.5), ("02", 0.7)], "old 02 records go"
    assert (again["date"], again["commit"]) == (run["date"], run["commit"])
    assert set(again["remeasured"]) == {"02_b.ipynb"}
    assert "Lesson 02 re-measured alone on" in tables.header(again)
    with pytest.raises(SystemExit, match="--merge needs --executed"):
        main(["bench", str(tmp_path / "02_b.ipynb"), "--merge"])
    with pytest.raises(ValueError, match="Cannot merge a gpu run .* into .*a smoke run"):
        runner.merged({**again, "profile": "gpu"}, executed / "run.json")


def test_gpu_check_without_network_runs_smoke_sizes_offline_under_the_gpu_precision(
    kit_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os

    lesson = write_notebook(tmp_path / "00_probe.ipynb", "import os, types\ncfg = types.SimpleNamespace("
                            "profile=os.environ['KITLIB_PROFILE'], precision=os.environ['KITLIB_PRECISION'])\n"
                            "assert os.environ['KITLIB_OFFLINE'] == '1'")
    executed = tmp_path / "gpu"
    before = dict(os.environ)
    assert main(["gpu-check", str(lesson), "--executed", str(executed)]) == 0
    assert dict(os.environ) == before, "the check's settings stay in the lessons' kernels"
    assert "no network: smoke sizes on the offline stand-ins under mixed_float16" in capsys.readouterr().out
    report = (executed / "report.md").read_text(encoding="utf-8")
    assert "| 00_probe.ipynb | smoke | mixed_float16 |" in report and report.rstrip().count("| no GPU |") == 1
    run = json.loads((executed / "run.json").read_text(encoding="utf-8"))["notebooks"]["00_probe.ipynb"]
    assert run["precision"] == "mixed_float16" and run["peak_gpu_gb"] is None and run["error"] is None
    assert (executed / "00_probe.ipynb").is_file()

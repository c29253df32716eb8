"""`python -m kitlib tables`: the README's and docs/results.md's tables come from one run's records, prose kept."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from kitlib import course
from kitlib.course import runner, tables
from kitlib import progress
from kitlib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def record(lesson: str, metric: str, value: float, model: str, dataset: str = "imdb") -> dict[str, Any]:
    return {"lesson": lesson, "metric": metric, "value": value, "profile": "cpu", "dataset": dataset, "model": model,
            "seconds": 10.0, "n_test": 25000, "machine": "AMD EPYC, 2 cores, Linux", "date": "2026-11-28"}


def provenance(seconds: float, error: str | None = None, datasets: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"profile": "cpu", "data_dir": "/home/someone/archives", "offline": True, "seconds": seconds, "error": error,
            "machine": "AMD EPYC, 2 cores, Linux", "date": "2026-11-28T20:00:00+00:00", "commit": "abc123def456",
            "datasets": list(datasets)}


RUN = {
    "profile": "cpu", "commit": "abc123def456", "machine": "AMD EPYC, 2 cores, Linux", "date": "2026-11-28",
    "notebooks": {"01_word_embeddings.ipynb": provenance(36.4, datasets=("digits",)),
                  "02_lstm_baseline.ipynb": provenance(193.0),
                  "03_pretraining_mlm.ipynb": provenance(120.0, "failed: ValueError: boom", ("imdb",))},
    "records": [record("01", "test_accuracy", 0.80, "bag of embeddings"),
                record("01", "test_accuracy", 0.856, "bag of embeddings"),  # the newer of the two counts
                record("02", "test_accuracy", 0.8634, "BiLSTM-64"),
                record("02", "p50_latency_ms_text", 33.2, "BiLSTM-64"),
                record("02", "val_accuracy", 0.87, "BiLSTM-64")],
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for relative in tables.FILES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    return tmp_path


def outside(text: str) -> str:
    """The text with every marked block emptied."""
    return re.sub(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)


def lesson_rows(text: str) -> dict[str, list[str]]:
    block = text.split("<!-- lessons:begin -->\n")[1].split("\n<!-- lessons:end -->")[0]
    return {cells[0]: cells for cells in (tables._cells(line) for line in block.splitlines()[2:])}


def test_tables_are_written_from_the_run_and_only_between_markers(checkout: Path) -> None:
    before = {rel: (checkout / rel).read_text(encoding="utf-8") for rel in tables.FILES}
    assert tables.update(RUN, checkout) == [checkout / rel for rel in tables.FILES]
    readme = (checkout / "README.md").read_text(encoding="utf-8")
    rows, old_rows = lesson_rows(readme), lesson_rows(before["README.md"])
    assert rows["01"][4] == "36 s on digits", "a lesson's time names the data it was measured on"
    assert rows["02"][4] == "3.2 min" and rows["03"][4] == "failed after 2.0 min"
    assert rows["00"][4] == "not in this run"
    for number, cells in rows.items():  # every hand-written column kept
        assert cells[:4] == old_rows[number][:4] and cells[5:] == old_rows[number][5:]
    assert "| 01 | imdb | bag of embeddings | test_accuracy | 85.6% | 25,000 | 36 s |" in readme
    assert "| 02 | imdb | BiLSTM-64 | test_accuracy | 86.3% | 25,000 | 3.2 min |" in readme
    assert "80.0%" not in readme and "p50_latency" not in readme and "val_accuracy" not in readme, \
        "README: the newest test accuracies only"
    assert ("cpu profile, measured 2026-11-28 on AMD EPYC, 2 cores, Linux, kit commit `abc123def456`; "
            "data: the official archives in a folder `archives` (`KITLIB_DATA_DIR`), offline") in readme
    assert outside(readme) == outside(before["README.md"]), "the prose around the tables is untouched"
    results = (checkout / "docs/results.md").read_text(encoding="utf-8")
    assert "| 02 | imdb | BiLSTM-64 | p50_latency_ms_text | 33.2 ms | 25,000 |  |" in results
    assert "| 03_pretraining_mlm.ipynb | cpu | failed after 2.0 min | - |" in results
    assert "| 02_lstm_baseline.ipynb | cpu | 3.2 min | within 6.0 min |" in results
    assert ("The 3 notebooks of this run took 5.8 min in all, against a budget of 30.0 min for the course and "
            "6.0 min a lesson; every lesson within its budget.") in results
    assert tables.update(RUN, checkout) == [], "a second run of the same records changes nothing"


def test_check_reports_stale_tables(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / tables.RUN_FILE).parent.mkdir(parents=True)
    (checkout / tables.RUN_FILE).write_text(json.dumps(RUN))
    assert main(["tables", "--root", str(checkout), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["tables", "--root", str(checkout)]) == 0
    assert main(["tables", "--root", str(checkout), "--check"]) == 0


def test_missing_markers_and_run_are_named(tmp_path: Path) -> None:
    with pytest.raises(tables.TablesError, match="No <!-- lessons:begin -->"):
        tables.render("# no tables here\n", ("lessons",), RUN, every_metric=False)
    with pytest.raises(tables.TablesError, match="run `make results` first"):
        tables.load_run(tmp_path / "run.json")


def test_tables_from_a_real_bench_run(built_site: Any) -> None:
    run = tables.load_run(built_site.executed / "run.json")
    readme = tables.render((ROOT / "README.md").read_text(encoding="utf-8"), ("lessons", "results"), run, False)
    rows = lesson_rows(readme)
    assert rows["01"][4].endswith(" s on rotten_tomatoes") and rows["05"][4] == "not in this run"
    assert "| 01 | rotten_tomatoes | bag of embeddings | test_accuracy |" in readme
    assert "smoke profile, measured" in readme


def test_readme_tables_are_those_of_the_committed_run() -> None:
    if not (course.checkout() / tables.RUN_FILE).is_file():
        pytest.skip("no `make results` run committed yet (docs/_executed/run.json)")
    run = tables.load_run()
    assert tables.update(run, ROOT, check=True) == [], "run `python -m kitlib tables`"
    assert tables.update_timings(run, ROOT, check=True) == [], "run `python -m kitlib tables`"
    assert tables.update_time_lines(run, ROOT, check=True) == [], "run `python -m kitlib tables`"


def test_long_cells_are_timed_by_the_runner_and_written_for_the_profile(tmp_path: Path) -> None:
    import nbformat

    def cell(source: str, start: str, end: str) -> Any:
        code = nbformat.v4.new_code_cell(source)
        code.metadata["execution"] = {"iopub.execute_input": f"2026-11-29T01:{start}Z",
                                      "shell.execute_reply": f"2026-11-29T01:{end}Z"}
        return code

    cells = [nbformat.v4.new_markdown_cell("# a lesson"), cell("quick()", "00:00.0", "00:02.5"),
             cell("slow()\n", "00:02.5", "04:12.9"), cell("almost()", "05:00.0", f"05:{progress.LONG:04.1f}"),
             nbformat.v4.new_code_cell("never_run()")]
    assert runner.long_cells(cells) == {progress.cell_key("slow()"): 250.4}

    run = {**RUN, "notebooks": {**RUN["notebooks"], "03_pretraining_mlm.ipynb": {
        **RUN["notebooks"]["03_pretraining_mlm.ipynb"], "long_cells": runner.long_cells(cells)}}}

    path = tmp_path / tables.TIMINGS_FILE
    assert tables.update_timings(run, tmp_path) == [path]
    timings = json.loads(path.read_text())
    assert timings["cpu"]["cells"] == {progress.cell_key("slow()"): {"lesson": "03", "took": "4.2 min"}}
    assert (timings["cpu"]["date"], timings["cpu"]["machine"]) == (RUN["date"], RUN["machine"])
    assert tables.update_timings(run, tmp_path) == [], "the same run again changes nothing"
    gpu = {**run, "profile": "gpu", "date": "2026-12-01"}
    assert tables.update_timings(gpu, tmp_path, check=True) == [path] and "gpu" not in path.read_text()
    tables.update_timings(gpu, tmp_path)
    assert set(json.loads(path.read_text())) == {"cpu", "gpu"}, "another profile's times are kept"


def test_each_lesson_time_line_gets_the_run_cpu_time(tmp_path: Path) -> None:
    line = "**Time:** smoke about 90 s · cpu 10–15 min (estimated) · gpu about 20 min (estimated)."
    assert tables.time_line(line, "13.2 min", "2026-11-29", ["imdb"]) == (
        "**Time:** smoke about 90 s · cpu 13.2 min on imdb (measured 2026-11-29) · gpu about 20 min (estimated).")
    assert "· cpu 68 s (measured" in tables.time_line(line, "68 s", "2026-11-29", []), "no records: no data named"
    (tmp_path / "notebooks").mkdir()
    for name in RUN["notebooks"]:
        shutil.copy(ROOT / "notebooks" / name, tmp_path / "notebooks" / name)
    changed = tables.update_time_lines(RUN, tmp_path)
    assert changed == [tmp_path / "notebooks" / n for n in ("01_word_embeddings.ipynb", "02_lstm_baseline.ipynb")]
    first = json.loads((tmp_path / "notebooks" / "02_lstm_baseline.ipynb").read_text())["cells"][0]
    assert "· cpu 3.2 min (measured 2026-11-28) ·" in "".join(first["source"]), "193 s"
    assert tables.update_time_lines(RUN, tmp_path) == [], "the failed lesson 03 keeps its line; nothing else to do"


def test_a_lesson_over_its_budget_is_marked_and_named() -> None:
    slow = {**RUN, "notebooks": {**RUN["notebooks"], "04_finetune_bert.ipynb": provenance(400.0)}}
    assert tables.budget_cell(slow["notebooks"]["04_finetune_bert.ipynb"], "cpu") == "**over 6.0 min by 40 s**"
    assert tables.course_line(slow).endswith("; over their budget: 04.")
    assert tables.budget_cell(provenance(400.0), "gpu") == "-", "no budget is set for the gpu profile"


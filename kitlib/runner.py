"""Run lesson notebooks headless and time them, for the README's timings and results tables."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

from kitlib import evaluate, runtime


def run_notebook(path: Path, timeout: int = 3600) -> float:
    """Execute a notebook top to bottom in its own folder (outputs discarded); return wall seconds."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return time.perf_counter() - start


def bench(paths: list[Path], out: Path | None = None) -> str:
    """Run notebooks in the active profile, then report their times and the results they recorded."""
    profile = os.environ.get("KITLIB_PROFILE", "cpu")
    rows = ["| notebook | profile | seconds (kernel start included) |", "| --- | --- | --- |"]
    for path in paths:
        seconds = run_notebook(path)
        rows.append(f"| {path.name} | {profile} | {seconds:.0f} |")
        print(rows[-1], flush=True)
    records = evaluate.load_results(runtime.results_dir(), profile)
    report = "\n".join([
        f"## {profile} profile, measured {datetime.date.today().isoformat()} on {evaluate.machine()}",
        f"Data: KITLIB_DATA_DIR={os.environ.get('KITLIB_DATA_DIR', '-')}, "
        f"offline={os.environ.get('KITLIB_OFFLINE', '0')}",
        "",
        "\n".join(rows),
        "",
        evaluate.results_table(records),
        "",
    ])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
    return report

"""Run lesson notebooks headless and time them, for the README's timings and results tables.

Each notebook runs under an overall time limit; a notebook that fails or runs out of time is named
in the report and the others still run. The report is labelled with the profile each notebook's
`cfg` actually used (read from its kernel after the run), not with a guess made outside it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path

from kitlib import evaluate, runtime

# Appended to the notebook's copy: the profile its own `kitlib.setup` resolved, or "-" if it made no cfg.
PROFILE_PROBE = 'print("kitlib-profile:", getattr(globals().get("cfg"), "profile", "-"))'


@dataclasses.dataclass
class Run:
    """One notebook's run: seconds, the profile its kernel used, and the error if it failed."""

    path: Path
    seconds: float
    profile: str = "-"
    error: str | None = None


def run_notebook(path: Path, timeout: float = 3600) -> Run:
    """Execute a notebook top to bottom in its own folder (outputs discarded) within `timeout` seconds."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROFILE_PROBE))
    client = nbclient.NotebookClient(
        notebook, timeout=int(timeout), kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    run = Run(path, 0.0)
    try:
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                remaining = timeout - (time.perf_counter() - start)
                if remaining <= 0:
                    raise CellTimeoutError(f"over the {timeout:.0f} s limit before cell {index + 1}")
                client.timeout = max(1, int(remaining))
                client.execute_cell(cell, index)
    except CellTimeoutError:
        run.error = f"did not finish within {timeout:.0f} s (--timeout)"
    except CellExecutionError as exc:
        run.error = f"failed: {exc.ename}: {exc.evalue}".splitlines()[0][:300]
    except DeadKernelError as exc:
        run.error = f"its kernel died ({exc})"
    run.seconds = time.perf_counter() - start
    probe = notebook.cells[-1].get("outputs", [])
    text = "".join(output.get("text", "") for output in probe)
    if "kitlib-profile:" in text:
        run.profile = text.split("kitlib-profile:")[1].strip()
    return run


def bench(paths: list[Path], out: Path | None = None, timeout: float = 3600) -> tuple[str, list[Run]]:
    """Run notebooks, then report their times, the profile each ran, failures, and the results they recorded."""
    rows = ["| notebook | profile | seconds (kernel start included) |", "| --- | --- | --- |"]
    runs = []
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name}: started", flush=True)
        run = run_notebook(path, timeout)
        runs.append(run)
        rows.append(f"| {path.name} | {run.profile} | {run.seconds:.0f}{' (' + run.error + ')' if run.error else ''} |")
        print(f"[{number}/{len(paths)}] {path.name}: {'stopped, ' + run.error if run.error else 'finished'} "
              f"after {run.seconds:.0f} s", flush=True)
    profiles = sorted({run.profile for run in runs if run.profile != "-"})
    label = ", ".join(profiles) or "unknown"
    failed = [f"- {run.path.name} {run.error}" for run in runs if run.error]
    records = [r for p in profiles for r in evaluate.load_results(runtime.results_dir(), p)]
    report = "\n".join([
        f"## {label} profile, measured {datetime.date.today().isoformat()} on {evaluate.machine()}",
        f"Data: KITLIB_DATA_DIR={os.environ.get('KITLIB_DATA_DIR', '-')}, "
        f"offline={os.environ.get('KITLIB_OFFLINE', '0')}",
        "",
        "\n".join(rows),
        "",
        *(["Failed:", *failed, ""] if failed else []),
        evaluate.results_table(records) if records else "No results recorded.",
        "",
    ])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
    return report, runs

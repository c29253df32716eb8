"""Run lesson notebooks headless and time them, for the README's timings and results tables.

Each notebook runs under an overall time limit; a notebook that fails or runs out of time is named
in the report and the others still run. The report is labelled with the profile each notebook's
`cfg` actually used (read from its kernel after the run), not with a guess made outside it.
With `executed`, each notebook's executed copy (outputs and figures embedded) is kept there with the
provenance of its run in its metadata (`kitlib_run`), for `python -m kitlib course site`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
import time
from pathlib import Path

from kitlib import _fs, evaluate, progress, runtime
from kitlib.course import notebooks

# Appended to the notebook's copy: the profile and precision its own `kitlib.setup` resolved ("-" if it made no
# cfg), and the peak memory TensorFlow allocated on the busiest GPU ("-" with no GPU, or without TensorFlow).
PROFILE_PROBE = """import sys as _sys
print("kitlib-profile:", getattr(globals().get("cfg"), "profile", "-"))
print("kitlib-precision:", getattr(globals().get("cfg"), "precision", "-"))
_tf = _sys.modules.get("tensorflow")
_gpus = _tf.config.list_logical_devices("GPU") if _tf else []
print("kitlib-peak-gpu-bytes:", max((_tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"]
                                     for i in range(len(_gpus))), default="-"))"""


def probed(text: str, key: str) -> str:
    """The value the probe printed after `kitlib-KEY:`, or "-"."""
    for line in text.splitlines():
        if line.startswith(f"kitlib-{key}:"):
            return line.split(":", 1)[1].strip()
    return "-"


@dataclasses.dataclass
class Run:
    """One notebook's run: seconds, the profile its kernel used, and the error if it failed."""

    path: Path
    seconds: float
    profile: str = "-"
    precision: str = "-"
    peak_gpu_bytes: int | None = None  # TensorFlow's peak allocation on the busiest GPU; None without one
    error: str | None = None
    provenance: dict[str, object] = dataclasses.field(default_factory=dict)


def kit_commit(folder: Path | None = None) -> str:
    """The kit's git commit (12 digits; `-dirty` when files other than executed copies differ from it), or "unknown".

    `make results` rewrites docs/_executed while it runs, so those files do not make the kit dirty.
    """
    where = folder or Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              timeout=30, cwd=where)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                 ":(exclude,top)docs/_executed"], capture_output=True, text=True, timeout=30, cwd=where)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0 or not head.stdout.strip():
        return "unknown"
    return head.stdout.strip() + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")


def cell_seconds(cell: dict) -> float | None:
    """How long an executed code cell ran, from the timestamps nbclient records in its metadata."""
    stamps = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in stamps or "shell.execute_reply" not in stamps:
        return None
    start, end = (datetime.datetime.fromisoformat(stamps[key].replace("Z", "+00:00"))
                  for key in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def long_cells(cells: list) -> dict[str, float]:
    """The executed code cells that took over `progress.LONG` seconds: {key of the cell's source: seconds}."""
    timed = {}
    for cell in cells:
        seconds = cell_seconds(cell) if cell["cell_type"] == "code" else None
        if seconds is not None and seconds > progress.LONG:
            timed[progress.cell_key(notebooks.source(cell))] = round(seconds, 1)
    return timed


def _provenance(run: Run, started: datetime.datetime, records: list[dict]) -> dict[str, object]:
    """What produced an executed copy: profile, data, models, machine, date, commit, time, error."""
    data_dir = os.environ.get("KITLIB_DATA_DIR")
    return {
        "profile": run.profile,
        "precision": run.precision,
        "peak_gpu_gb": None if run.peak_gpu_bytes is None else round(run.peak_gpu_bytes / 1e9, 2),
        "datasets": sorted({r["dataset"] for r in records}),
        "models": sorted({r["model"] for r in records}),
        "data_dir": Path(data_dir).name if data_dir else "-",  # the folder's name: no machine's path in a table
        "offline": runtime.env_flag("KITLIB_OFFLINE"),
        "machine": evaluate.machine(),
        "date": started.isoformat(timespec="seconds"),
        "commit": kit_commit(run.path.parent),
        "seconds": round(run.seconds, 1),
        "error": run.error,
    }


def _keep(notebook: object, run: Run, folder: Path) -> Path:
    """Write the executed copy (probe cell dropped, provenance in the metadata) atomically into `folder`."""
    notebook.cells.pop()  # the profile probe
    notebook.metadata["kitlib_run"] = run.provenance
    target = folder / run.path.name
    folder.mkdir(parents=True, exist_ok=True)
    notebooks.write(target, notebook)
    return target


def run_notebook(path: Path, timeout: float = 3600, executed: Path | None = None) -> Run:
    """Execute a notebook top to bottom in its own folder within `timeout` seconds; keep the copy in `executed`."""
    import nbclient
    import nbformat
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    notebook = notebooks.read(path)
    notebook.cells.append(nbformat.v4.new_code_cell(PROFILE_PROBE))
    client = nbclient.NotebookClient(
        notebook, timeout=int(timeout), kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc)
    recorded_before = len(evaluate.load_results(runtime.results_dir()))
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
    run.profile, run.precision = probed(text, "profile"), probed(text, "precision")
    peak = probed(text, "peak-gpu-bytes")
    run.peak_gpu_bytes = int(peak) if peak.isdigit() else None
    lesson = path.name[:2]
    new = [r for r in evaluate.load_results(runtime.results_dir())[recorded_before:] if r["lesson"] == lesson]
    run.provenance = {**_provenance(run, started, new), "long_cells": long_cells(notebook.cells[:-1])}
    if executed is not None:
        _keep(notebook, run, executed)
    return run


RUN_FILE = "run.json"  # beside the executed copies: the whole run and the records it wrote, for `kitlib course tables`


def merged(summary: dict, path: Path) -> dict:
    """`summary` (a bench of some lessons) merged into the run in `path`: its notebooks and records replace theirs.

    The run keeps its date and commit; the merged notebooks are listed under "remeasured" with their own.
    """
    if not path.is_file():
        return summary
    old = json.loads(path.read_text(encoding="utf-8"))
    if (old["profile"], old["machine"]) != (summary["profile"], summary["machine"]):
        raise ValueError(f"Cannot merge a {summary['profile']} run on {summary['machine']} into {path}, a "
                         f"{old['profile']} run on {old['machine']}: re-run every lesson instead (make results).")
    lessons = {name[:2] for name in summary["notebooks"]}
    remeasured = {**old.get("remeasured", {}), **{name: {"date": summary["date"], "commit": summary["commit"]}
                                                 for name in summary["notebooks"]}}
    return {**old, "notebooks": {**old["notebooks"], **summary["notebooks"]}, "remeasured": remeasured,
            "records": [r for r in old["records"] if r["lesson"] not in lessons] + summary["records"]}


def bench(paths: list[Path], out: Path | None = None, timeout: float = 3600,
          executed: Path | None = None, merge: bool = False) -> tuple[str, list[Run]]:
    """Run notebooks, then report their times, the profile each ran, failures, and the results they recorded.

    With `executed`, the executed copies and `run.json` (each notebook's provenance and the records this run
    wrote) go there; with `merge`, into the run already there (re-measuring a few lessons), else replacing it.
    """
    from kitlib.course import tables

    rows = ["| notebook | profile | precision | seconds (kernel start included) | peak GPU memory | budget |",
            "| --- | --- | --- | --- | --- | --- |"]
    runs = []
    recorded_before = len(evaluate.load_results(runtime.results_dir()))
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name}: started", flush=True)
        run = run_notebook(path, timeout, executed)
        runs.append(run)
        peak = "no GPU" if run.peak_gpu_bytes is None else f"{run.peak_gpu_bytes / 1e9:.1f} GB"
        budget = tables.budget_cell({"seconds": run.seconds, "error": run.error}, run.profile)
        rows.append(f"| {path.name} | {run.profile} | {run.precision} | "
                    f"{run.seconds:.0f}{' (' + run.error + ')' if run.error else ''} | {peak} | {budget} |")
        print(f"[{number}/{len(paths)}] {path.name}: {'stopped, ' + run.error if run.error else 'finished'} "
              f"after {run.seconds:.0f} s", flush=True)
    profiles = sorted({run.profile for run in runs if run.profile != "-"})
    label = ", ".join(profiles) or "unknown"
    failed = [f"- {run.path.name} {run.error}" for run in runs if run.error]
    records = evaluate.load_results(runtime.results_dir())[recorded_before:]
    commit = kit_commit(paths[0].parent if paths else None)
    report = "\n".join([
        f"## {label} profile, measured {datetime.date.today().isoformat()} on {evaluate.machine()}, kit {commit}",
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
        _fs.write_atomically(out, report)
    if executed is not None:
        summary = {"profile": label, "commit": commit, "machine": evaluate.machine(),
                   "date": datetime.date.today().isoformat(),
                   "notebooks": {run.path.name: run.provenance for run in runs}, "records": records}
        if merge:
            summary = merged(summary, executed / RUN_FILE)
        executed.mkdir(parents=True, exist_ok=True)
        _fs.write_atomically(executed / RUN_FILE, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return report, runs


def gpu_check_environment() -> tuple[dict[str, str], str]:
    """The environment of a real GPU's ready check, and a sentence saying which mode: the gpu profile when TF Hub
    and the datasets can be reached; without network, smoke sizes on the offline stand-ins under the precision the
    gpu profile turns on (mixed_float16), which is also how it runs, slowly, on a CPU."""
    if not runtime.env_flag("KITLIB_OFFLINE") and runtime.network_available():
        return {"KITLIB_PROFILE": "gpu"}, "online: the gpu profile, TF Hub's models and the full datasets"
    return ({"KITLIB_PROFILE": "smoke", "KITLIB_OFFLINE": "1", "KITLIB_PRECISION": "mixed_float16"},
            "no network: smoke sizes on the offline stand-ins under mixed_float16, the gpu profile's precision")

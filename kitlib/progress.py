"""Progress a learner can see: tqdm bars (a widget in JupyterLab and Colab, text in a terminal), stage lines,
one line per finished KerasTuner trial, and, before a long lesson cell runs, how long it took when measured.

On when someone watches: inside a notebook kernel or with a terminal on stderr. Off in the smoke profile
(the tests) and when nobody watches (output piped to a file, CI). `KITLIB_PROGRESS=1` or `0` decides instead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

ENV = "KITLIB_PROGRESS"
TICK = 1.0  # seconds between refreshes of an elapsed-time line
SLOW = 2.0  # seconds before a bar over files appears: quick reads show none
LONG = 30.0  # seconds: a lesson cell measured to take longer says so before it runs
TIMINGS = Path(__file__).with_name("timings.json")  # written by `python -m kitlib course tables` from `make results`


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbclient), not in a terminal IPython."""
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and "IPKernelApp" in ipython.get_ipython().config
    except AttributeError:  # IPython imported but no shell running
        return False


def enabled(profile: str | None = None) -> bool:
    """Whether to show bars: `KITLIB_PROGRESS` if set, else off in the smoke profile, else when someone watches."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in {"0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    if (profile or os.environ.get("KITLIB_PROFILE", "")).strip().lower() == "smoke":
        return False
    return in_notebook() or sys.stderr.isatty()


def _stream() -> TextIO:
    """Where text progress goes: stdout in a notebook (stderr shows as an error there), else stderr like tqdm."""
    return sys.stdout if in_notebook() else sys.stderr


def _tqdm_class() -> Any:
    """tqdm's notebook widget when the kernel can show it (ipywidgets installed), else its text bar."""
    if in_notebook():
        from tqdm.notebook import IProgress

        if IProgress is not None:
            from tqdm.notebook import tqdm

            return tqdm
    from tqdm.std import tqdm

    return tqdm


class _Off:
    """A bar that shows nothing (progress is off)."""

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_description_str(self, desc: str) -> None:
        """Nothing to show."""


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "B", delay: float = 0) -> Iterator[Any]:
    """A progress bar over `total` units (bytes: with rate and time left), shown once `delay` seconds have passed.

    A silent stand-in when progress is off.
    """
    if not enabled():
        yield _Off()
        return
    scale = dict(unit_scale=True, unit_divisor=1024) if unit == "B" else {}
    with _tqdm_class()(total=total, desc=desc, unit=unit, file=_stream(), dynamic_ncols=True, delay=delay,
                       **scale) as shown:
        yield shown


def counted(items: Iterable[Any], shown: Any) -> Iterator[Any]:
    """Yield `items`, advancing `shown` by one after each is handled."""
    for item in items:
        yield item
        shown.update(1)


def note(message: str) -> None:
    """One stage line ("verifying sha256 ...") when progress is on."""
    if enabled():
        print(message, file=_stream(), flush=True)


@contextlib.contextmanager
def working(desc: str) -> Iterator[None]:
    """A line showing `desc` and the time elapsed, refreshed every second while the block runs (when progress is on)."""
    if not enabled():
        yield
        return
    shown = _tqdm_class()(total=None, desc=desc, bar_format="{desc}: {elapsed}", file=_stream())
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK):
            shown.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    outcome = "stopped"
    try:
        yield
        outcome = "done"
    finally:
        stop.set()
        ticker.join()
        shown.set_description_str(f"{desc}: {outcome}")
        shown.close()


def trial_lines(tuner: Any, label: str) -> Any:
    """Make `tuner` print one line per finished trial (score, best so far, time) when progress is on; returns it.

    KerasTuner's own display (`search(verbose=1)`) clears the cell's output after every trial and prints each
    epoch; this keeps earlier output and shows one line per trial. It wraps the `on_trial_begin` and
    `on_trial_end` hooks KerasTuner calls on the tuner, for this tuner only.
    """
    if not enabled():
        return tuner
    begin, end, started = tuner.on_trial_begin, tuner.on_trial_end, {}

    def on_trial_begin(trial: Any) -> None:
        started[trial.trial_id] = time.perf_counter()
        begin(trial)

    def on_trial_end(trial: Any) -> None:
        end(trial)
        best = tuner.oracle.get_best_trials(1)
        score = "failed" if trial.score is None else f"{trial.score:.3f}"
        best_score = f"{best[0].score:.3f}" if best else "none yet"
        seconds = time.perf_counter() - started.pop(trial.trial_id, time.perf_counter())
        print(f"{label} trial {len(tuner.oracle.trials)}/{tuner.oracle.max_trials}: {tuner.oracle.objective.name} "
              f"{score}, best so far {best_score} ({seconds:.0f} s)", file=_stream(), flush=True)

    tuner.on_trial_begin, tuner.on_trial_end = on_trial_begin, on_trial_end
    return tuner


def cell_key(source: str) -> str:
    """The key of a cell's measured time: a hash of its source, so an edited cell has no stale estimate."""
    return hashlib.sha256(source.strip().encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def measured_cells() -> dict[str, Any]:
    """The long cells' measured times, per profile (empty before the first `make results`)."""
    return json.loads(TIMINGS.read_text(encoding="utf-8")) if TIMINGS.is_file() else {}


class CellClock:
    """An IPython `pre_run_cell` hook: before a cell measured to take over LONG seconds, print how long it took."""

    def __init__(self, profile: str) -> None:
        self.profile = profile

    def __call__(self, info: Any) -> None:
        """Announce the cell about to run, if it is a long one measured in this profile."""
        run = measured_cells().get(self.profile)
        cell = run and run["cells"].get(cell_key(getattr(info, "raw_cell", "") or ""))
        if cell:
            print(f"[this cell took {cell['took']} in the {self.profile} profile when measured on {run['machine']}, "
                  f"{run['date']}]", file=_stream(), flush=True)


def announce_long_cells(profile: str) -> None:
    """From now on, in this notebook kernel, long lesson cells say before they run how long they took when measured."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and in_notebook() else None
    if shell is None:
        return
    for hook in [hook for hook in shell.events.callbacks["pre_run_cell"] if isinstance(hook, CellClock)]:
        shell.events.unregister("pre_run_cell", hook)  # setup() run again, perhaps with another profile
    if enabled(profile):
        shell.events.register("pre_run_cell", CellClock(profile))

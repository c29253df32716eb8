"""Progress a learner can see: tqdm bars (a widget in JupyterLab and Colab, text in a terminal) and stage lines.

On when someone watches: inside a notebook kernel or with a terminal on stderr. Off in the smoke profile
(the tests) and when nobody watches (output piped to a file, CI). `KITLIB_PROGRESS=1` or `0` decides instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterable, Iterator, TextIO

ENV = "KITLIB_PROGRESS"
TICK = 1.0  # seconds between refreshes of an elapsed-time line
SLOW = 2.0  # seconds before a bar over files appears: quick reads show none


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

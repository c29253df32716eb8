"""TensorBoard logs, seen (lesson 02): read the event files back, plot them, and run the real server on loopback.

`keras.callbacks.TensorBoard` writes one folder per run (`train/`, `validation/`) of event files. In
JupyterLab and Colab, `%load_ext tensorboard` then `%tensorboard --logdir runs` shows them in the notebook;
`read_scalars` and `plot_scalars` read the same files with TensorBoard's own reader, so the curves can be
seen in any viewer and checked by code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence


def read_scalars(logdir: Path | str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{run: {tag: [(step, value), ...]}} for every run folder under `logdir`, read with TensorBoard's reader."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    logdir = Path(logdir)
    folders = sorted({p.parent for p in logdir.rglob("events.out.tfevents*")})
    if not folders:
        raise FileNotFoundError(f"No TensorBoard event files under {logdir}: pass the log_dir given to "
                                "keras.callbacks.TensorBoard, after training.")
    runs: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for folder in folders:
        reader = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
        reader.Reload()
        tags: dict[str, list[tuple[int, float]]] = {}
        for tag in reader.Tags()["tensors"]:  # Keras 3 writes scalars as tf.summary v2 tensors
            if reader.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
                tags[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in reader.Tensors(tag)]
        for tag in reader.Tags()["scalars"]:
            tags[tag] = [(e.step, float(e.value)) for e in reader.Scalars(tag)]
        if tags:
            runs[folder.relative_to(logdir).as_posix()] = tags
    return runs


def plot_scalars(logdir: Path | str, tags: Sequence[str] = ("epoch_loss", "epoch_accuracy")) -> None:
    """One panel per tag, one line per run (train, validation), drawn from the event files under `logdir`."""
    import matplotlib.pyplot as plt

    runs = read_scalars(logdir)
    fig, axes = plt.subplots(1, len(tags), figsize=(4.5 * len(tags), 3.2), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for run, scalars in runs.items():
            if tag in scalars:
                steps, values = zip(*scalars[tag])
                ax.plot(steps, values, marker="o", label=run)
        ax.set(title=f"{tag} (from {Path(logdir).name}'s event files)", xlabel="epoch")
        ax.legend()
    fig.tight_layout()


def _binary_env() -> dict[str, str]:
    """The environment with TENSORBOARD_BINARY set to this Python's `tensorboard` (the magic looks it up on PATH)."""
    binary = Path(sys.executable).with_name("tensorboard")
    env = dict(os.environ)
    if binary.exists():
        env.setdefault("TENSORBOARD_BINARY", str(binary))
    return env


def use_this_environment() -> None:
    """Point `%tensorboard` at this kernel's own TensorBoard (a venv's bin folder is often not on PATH)."""
    os.environ.update(_binary_env())
    forget_dead_servers()


def forget_dead_servers() -> int:
    """Delete TensorBoard's notes of servers that no longer run; return how many.

    A kernel that died or was restarted leaves its server's note behind, and `%tensorboard` with the same
    arguments then "reuses" that dead server and shows an empty frame (TensorBoard does not check: see the TODO
    in `tensorboard.manager._find_matching_instance`). The notes' folder has no public accessor, hence the
    private `_get_info_dir`.
    """
    from tensorboard import manager

    forgotten = 0
    for info in manager.get_all():
        try:
            os.kill(info.pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            Path(manager._get_info_dir(), f"pid-{info.pid}.info").unlink(missing_ok=True)
            forgotten += 1
        except PermissionError:
            pass  # another user's live server
    return forgotten


@contextlib.contextmanager
def serve(logdir: Path | str, timeout: float = 60.0) -> Iterator[str]:
    """Run the real TensorBoard server on 127.0.0.1 (a free port) for `logdir`; yield its URL; stop it after."""
    from tensorboard import manager

    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_binary_env())
    try:
        deadline = time.monotonic() + timeout
        info = None
        while info is None:
            if process.poll() is not None:
                raise RuntimeError(f"TensorBoard stopped at start: {process.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"TensorBoard did not start within {timeout:g} s.")
            info = next((i for i in manager.get_all() if i.pid == process.pid), None)
            time.sleep(0.2)
        yield f"http://127.0.0.1:{info.port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def stop_tensorboard(logdir: Path | str = "runs") -> int:
    """Stop the TensorBoard servers `%tensorboard --logdir <logdir>` started from this folder; return how many."""
    from tensorboard import manager

    stopped = 0
    for info in manager.get_all():
        if Path(info.logdir).resolve() == Path(logdir).resolve():
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGTERM)
                stopped += 1
    return stopped

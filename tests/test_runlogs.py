"""TensorBoard, seen: the event files a fit writes read back equal its history, and the real server serves them."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kitlib import runlogs


@pytest.fixture(scope="module")
def logged_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[float]]]:
    """Three epochs of a tiny model with keras.callbacks.TensorBoard; (log folder, history)."""
    import keras

    keras.utils.set_random_seed(0)
    logdir = tmp_path_factory.mktemp("runs") / "tiny"
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, validation_split=0.25, epochs=3, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(log_dir=str(logdir))])
    return logdir, history.history


def test_event_files_read_back_equal_the_history(logged_fit: tuple[Path, dict]) -> None:
    logdir, history = logged_fit
    runs = runlogs.read_scalars(logdir)
    assert set(runs) == {"train", "validation"}
    assert [step for step, _ in runs["train"]["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in runs["train"]["epoch_loss"]], history["loss"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in runs["validation"]["epoch_accuracy"]], history["val_accuracy"], rtol=1e-6)


def test_no_event_files_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No TensorBoard event files under"):
        runlogs.read_scalars(tmp_path)


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_the_real_server_serves_the_same_scalars_and_stops(logged_fit: tuple[Path, dict]) -> None:
    logdir, history = logged_fit
    with runlogs.serve(logdir) as url:
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while "train" not in _get(f"{url}/data/runs") and time.monotonic() < deadline:
            time.sleep(0.5)  # the server loads the event files in the background
        rows = _get(f"{url}/data/plugin/scalars/scalars?run=train&tag=epoch_loss")
        assert [step for _, step, _ in rows] == [0, 1, 2]
        np.testing.assert_allclose([value for _, _, value in rows], history["loss"], rtol=1e-6)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_dead_server_is_forgotten_so_tensorboard_starts_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    from tensorboard import manager

    monkeypatch.setattr(manager, "_get_info_dir", lambda: str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs, as after a kernel that died with its server
    for pid in (dead.pid, os.getpid()):
        note = {"version": manager.version.VERSION, "start_time": 1, "port": 6006, "pid": pid, "path_prefix": "",
                "logdir": "runs", "db": "", "cache_key": "the same arguments" if pid == dead.pid else "others"}
        (tmp_path / f"pid-{pid}.info").write_text(json.dumps(note))
    assert manager._find_matching_instance("the same arguments").pid == dead.pid, "TensorBoard would reuse it"
    runlogs.use_this_environment()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"pid-{os.getpid()}.info"], "the live one stays"
    assert runlogs.forget_dead_servers() == 0

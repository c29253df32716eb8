"""Local multi-worker clusters on loopback: free ports, TF_CONFIG per worker, processes that always stop."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class WorkerError(RuntimeError):
    """A worker process failed or ran out of time; the message carries the end of its log."""


@dataclasses.dataclass(frozen=True)
class WorkerResult:
    """What one worker process did: its index, seconds until it exited cleanly, and its log."""

    index: int
    seconds: float
    log: str


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that are free right now (held open together so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: list[int], index: int) -> dict:
    """The TF_CONFIG of worker `index` in a cluster of workers on loopback ports."""
    return {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }


def _tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_workers(
    script: Path, workers: int = 2, args: list[str] | None = None, timeout: float = 300, log_dir: Path | None = None
) -> list[WorkerResult]:
    """Run `script` once per worker with its TF_CONFIG; wait for all; stop every process on any failure."""
    script = Path(script).resolve()
    log_dir = Path(log_dir or script.parent / "worker_logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(workers)
    processes: list[tuple[subprocess.Popen, Path]] = []
    start = time.perf_counter()
    try:
        for index in range(workers):
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config(ports, index)))
            log = log_dir / f"worker{index}.log"
            with open(log, "w") as handle:
                command = [sys.executable, str(script), *(args or [])]
                processes.append((subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                                   cwd=script.parent, start_new_session=True), log))
        finished: dict[int, float] = {}
        while len(finished) < workers:  # poll all: a failed worker must not leave the others waiting forever
            for index, (process, log) in enumerate(processes):
                code = process.poll()
                if code is not None and index not in finished:
                    if code != 0:
                        raise WorkerError(f"worker {index} exited with code {code}; end of its log ({log}):\n{_tail(log)}")
                    finished[index] = time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                late = [i for i in range(workers) if i not in finished]
                raise WorkerError(f"workers {late} did not finish within {timeout:.0f} s; log of worker {late[0]}:\n"
                                  f"{_tail(processes[late[0]][1])}")
            time.sleep(0.2)
        return [WorkerResult(i, finished[i], log.read_text(errors="replace")) for i, (_, log) in enumerate(processes)]
    finally:
        for process, _ in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the worker's whole session, helpers included
                process.wait()

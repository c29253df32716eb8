"""Local clusters: TF_CONFIG per worker, loopback ports, and workers that always stop."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from kitlib import cluster

WORKER = """
import json, os, sys, time
config = json.loads(os.environ["TF_CONFIG"])
index = config["task"]["index"]
open(f"pid{index}", "w").write(str(os.getpid()))
open(f"config{index}.json", "w").write(os.environ["TF_CONFIG"])
print(f"worker {index} of {len(config['cluster']['worker'])} says hello", flush=True)
behaviour = sys.argv[1 + index]
if behaviour == "fail":
    sys.exit(3)
if behaviour == "hang":
    time.sleep(120)
"""


def write_worker(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return script


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_ports_are_distinct_and_bindable_on_loopback() -> None:
    ports = cluster.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_tf_config_names_every_worker_and_this_task() -> None:
    assert cluster.tf_config([2222, 2223], 1) == {
        "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 1},
    }


def test_each_worker_gets_its_own_tf_config_and_log(tmp_path: Path) -> None:
    results = cluster.run_workers(write_worker(tmp_path), 2, ["ok", "ok"], timeout=30)
    assert [r.index for r in results] == [0, 1]
    configs = [json.loads((tmp_path / f"config{i}.json").read_text()) for i in range(2)]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert configs[0]["cluster"] == configs[1]["cluster"]
    assert all(addr.startswith("127.0.0.1:") for addr in configs[0]["cluster"]["worker"])
    assert "worker 1 of 2 says hello" in results[1].log


def test_a_failing_worker_stops_the_others_at_once(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(cluster.WorkerError, match=r"(?s)worker 1 exited with code 3.*worker 1 of 2 says hello"):
        cluster.run_workers(write_worker(tmp_path), 2, ["hang", "fail"], timeout=60)
    assert time.perf_counter() - start < 20, "the hanging worker must not be waited for"
    time.sleep(0.2)
    assert not alive(int((tmp_path / "pid0").read_text())), "the hanging worker was left running"


def test_timeout_kills_every_worker(tmp_path: Path) -> None:
    with pytest.raises(cluster.WorkerError, match=r"workers \[0, 1\] did not finish within 3 s"):
        cluster.run_workers(write_worker(tmp_path), 2, ["hang", "hang"], timeout=3)
    time.sleep(0.2)
    assert not any(alive(int((tmp_path / f"pid{i}").read_text())) for i in range(2))

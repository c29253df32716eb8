"""Same profile, same numbers: one cheap lesson run twice in the smoke profile records the same results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_lesson(tmp: Path, cache: Path, name: str) -> list[dict]:
    """Execute a lesson headless in a fresh kernel with its own results folder; its records."""
    results = tmp / name
    env_code = (
        "import os, sys; from pathlib import Path; "
        f"os.environ.update(KITLIB_PROFILE='smoke', KITLIB_OFFLINE='1', KITLIB_DATA_DIR='', KITLIB_PROGRESS='0', "
        f"KITLIB_CACHE={str(cache)!r}, KITLIB_RESULTS={str(results)!r}); "
        "from kitlib.course import runner; "
        f"run = runner.run_notebook(Path({str(ROOT / 'notebooks' / '01_word_embeddings.ipynb')!r}), 900); "
        "sys.exit(1 if run.error else 0)"
    )
    done = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = (results / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_lesson_01_twice_gives_the_same_records(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # shared: the second run finds the data where the first left it
    first, second = run_lesson(tmp_path, cache, "first"), run_lesson(tmp_path, cache, "second")
    keep = ("lesson", "metric", "value", "dataset", "model", "n_test", "profile")
    assert first and [{k: r.get(k) for k in keep} for r in first] == [{k: r.get(k) for k in keep} for r in second]

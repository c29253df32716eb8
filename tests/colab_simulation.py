"""Colab's set-up, simulated on Colab-like stacks: pip's own plan (--dry-run --report) must never touch TensorFlow.

Run by `make test-colab` (it needs PyPI and a Python 3.12, as Colab has; too slow for the suite). For each stack, a
Python 3.12 venv gets the stack as installed distributions (metadata only: name, version and the requirements that
tie them together, which is all pip's resolver reads), kitlib.runtime decides what to ask for and what to keep, and
pip plans that install. A stack whose TensorFlow is below the kit's floor must stop with kitlib's sentence instead.
Usage: python tests/colab_simulation.py PYTHON3.12 WORKDIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kitlib import runtime  # noqa: E402  (this checkout's)

# Colab-like stacks of their day: {distribution: (version, its requirements that pip checks)}.
STACKS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "tf-2.19.0": {
        "tensorflow": ("2.19.0", ["numpy<2.2.0,>=1.26.0", "protobuf>=3.20.3", "ml-dtypes<1.0.0,>=0.5.1"]),
        "tensorflow-text": ("2.19.0", ["tensorflow<2.20,>=2.19.0"]), "tf-keras": ("2.19.0", ["tensorflow<2.20,>=2.19"]),
        "keras": ("3.10.0", ["numpy", "ml-dtypes"]), "keras-hub": ("0.21.1", ["keras>=3.5"]),
        "keras-nlp": ("0.21.1", ["keras-hub==0.21.1"]), "numpy": ("2.0.2", []), "ml-dtypes": ("0.5.1", []),
        "protobuf": ("5.29.5", []), "psutil": ("5.9.5", []), "nvidia-cudnn-cu12": ("9.3.0.75", []),
        "tensorboard": ("2.19.0", []),
    },
    "tf-2.20.0": {
        "tensorflow": ("2.20.0", ["numpy>=1.26.0", "protobuf>=5.28.0", "ml-dtypes<1.0.0,>=0.5.1"]),
        "tensorflow-text": ("2.20.0", ["tensorflow<2.21,>=2.20.0"]), "tf-keras": ("2.20.1", ["tensorflow<2.21,>=2.20"]),
        "keras": ("3.11.3", ["numpy", "ml-dtypes"]), "keras-hub": ("0.22.2", ["keras>=3.5"]),
        "keras-nlp": ("0.22.2", ["keras-hub==0.22.2"]), "numpy": ("2.0.2", []), "ml-dtypes": ("0.5.3", []),
        "protobuf": ("5.29.5", []), "psutil": ("5.9.5", []), "nvidia-cudnn-cu12": ("9.3.0.75", []),
        "tensorboard": ("2.20.0", []),
    },
    "tf-2.21.0": {
        "tensorflow": ("2.21.0", ["numpy>=1.26.0", "protobuf>=5.28.0", "ml-dtypes<1.0.0,>=0.5.1"]),
        "tensorflow-text": ("2.21.0", ["tensorflow<2.22,>=2.21.0"]), "tf-keras": ("2.21.0", ["tensorflow<2.22,>=2.21"]),
        "keras": ("3.13.2", ["numpy", "ml-dtypes"]), "keras-hub": ("0.24.0", ["keras>=3.5"]),
        "keras-nlp": ("0.24.0", ["keras-hub==0.24.0"]), "numpy": ("2.0.2", []), "ml-dtypes": ("0.5.3", []),
        "protobuf": ("5.29.5", []), "psutil": ("5.9.5", []), "nvidia-cudnn-cu12": ("9.3.0.75", []),
        "tensorboard": ("2.20.0", []),
    },
}


def floors() -> dict[str, str]:
    """The kit's declared floors, from this checkout's pyproject (kitlib is not installed in the simulated venv)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {name.strip().lower(): floor.strip() for name, floor in (d.split(">=") for d in declared if ">=" in d)}


def fake_install(site: Path, stack: dict[str, tuple[str, list[str]]]) -> None:
    """Write a dist-info per distribution: what pip's resolver and its conflict check read of an installed stack."""
    for name, (version, requires) in stack.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        (info / "METADATA").write_text("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")


def simulate(python: str, work: Path, name: str, stack: dict[str, tuple[str, list[str]]]) -> str:
    """Plan the set-up on one stack; returns a line saying what pip would install. Raises AssertionError on a fault."""
    venv = work / name
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    fake_install(site, stack)
    installed = {n: v for n, (v, _) in stack.items()}
    try:
        wanted = runtime.colab_requirements(installed, floors())
    except runtime.ColabStackError as stop:
        assert _older(installed["tensorflow"], floors()["tensorflow"]), f"{name}: stopped above the floor: {stop}"
        return f"{name}: stops before pip runs: {stop}"
    kept = work / f"{name}-kept.txt"
    kept.write_text("\n".join(runtime.colab_constraints(installed)) + "\n")
    report = work / f"{name}-report.json"
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet", "--report",
                           str(report), "--constraint", str(kept), *wanted], capture_output=True, text=True)
    assert done.returncode == 0, f"{name}: pip found no plan for {wanted}:\n{done.stdout}{done.stderr}"
    assert "ERROR" not in done.stderr, f"{name}: pip reported a conflict:\n{done.stderr}"
    plan = {item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}
    moved = sorted(n for n in plan if n in installed and (n in runtime.KEPT or n.startswith(runtime.KEPT_PREFIXES)))
    assert "tensorflow" not in plan and not moved, f"{name}: pip would replace {moved}"
    picked = ", ".join(f"{n} {plan[n]}" for n in ("keras-hub", "keras-nlp", "tensorflow-text") if n in plan)
    return f"{name}: asks for {' '.join(wanted)}; pip keeps TensorFlow {installed['tensorflow']} and picks {picked}"


def _older(version: str, floor: str) -> bool:
    """True when `version` is an older release than `floor`."""
    from packaging.version import Version

    return Version(version) < Version(floor)


def main() -> int:
    """Simulate every stack; print one line each; exit 1 when any fails."""
    python, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, stack in STACKS.items():
        try:
            print(simulate(python, work, name, stack), flush=True)
        except AssertionError as fault:
            failed += 1
            print(f"FAILED {fault}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

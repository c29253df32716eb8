"""The facade: lessons reach kitlib through `kitlib.<name>` alone, every name resolves, and the import is light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import kitlib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HEAVY = ("tensorflow", "keras", "matplotlib", "sklearn", "keras_hub", "tensorflow_hub")


def code_cells(path: Path) -> list[str]:
    """A lesson's code cells, IPython magics and shell lines blanked so that `ast` can read them."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["\n".join("" if line.lstrip().startswith(("%", "!")) else line
                      for line in "".join(c["source"]).splitlines())
            for c in cells if c["cell_type"] == "code"]


def kitlib_uses(tree: ast.AST) -> list[str]:
    """What a cell takes from kitlib: `from kitlib... import`, `import kitlib.x`, and `kitlib.<name>` attributes."""
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kitlib":
            uses.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            uses += [f"import {a.name}" for a in node.names if a.name.startswith("kitlib.")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "kitlib":
            uses.append(node.attr)
    return uses


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lessons_use_only_the_facade(path: Path) -> None:
    for source in code_cells(path):
        for use in kitlib_uses(ast.parse(source)):
            assert not use.startswith(("from ", "import ")), f"{path.name}: `{use}`: lessons import only `kitlib`"
            assert use in kitlib.__all__, f"{path.name}: kitlib.{use} is not on the facade (kitlib/__init__.py)"


def test_the_use_finder_sees_sub_module_imports() -> None:
    found = kitlib_uses(ast.parse("from kitlib.models import hub\nimport kitlib.serving.rest\nkitlib.nothing_here()"))
    assert found == ["from kitlib.models import ...", "import kitlib.serving.rest", "nothing_here"]


@pytest.mark.parametrize("name", kitlib.__all__)
def test_every_facade_name_resolves(name: str) -> None:
    assert getattr(kitlib, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        kitlib.nothing_here  # noqa: B018


def test_import_kitlib_is_light() -> None:
    """`import kitlib` and `kitlib.setup` loads no TensorFlow, Keras, Matplotlib or scikit-learn."""
    probe = (f"import sys, kitlib; kitlib.Config; heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]; "
             "print(','.join(sorted(heavy)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import kitlib loaded {done.stdout.strip()}"

"""Student copies: solutions stubbed, deterministic, valid Python; for every exercise of every lesson the stub fails
its check with "not written yet" and the solution passes it."""

from __future__ import annotations

import ast
import json
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from kitlib import checks
from kitlib.course import release
from kitlib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WITH_EXERCISES = [path.name for path in NOTEBOOKS if not path.name.startswith("00_")]  # every lesson after 00


def code_sources(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def solution_lines(text: str) -> list[str]:
    """The non-blank lines strictly between BEGIN and END SOLUTION markers."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() == release.BEGIN:
            inside = True
        elif line.strip() == release.END:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release")
    assert main(["release", "--src", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    return out


def test_strip_solutions_keeps_indentation_and_surroundings() -> None:
    source = "def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    y = x\n    return y\n    ### END SOLUTION\nprint(1)\n"
    assert release.strip_solutions(source) == 'def f(x):\n    """Doc."""\n    raise NotImplementedError()\nprint(1)\n'
    assert release.strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION") == "raise NotImplementedError()"


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx = 1\n", "x = 1\n### END SOLUTION\n",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"])
def test_unbalanced_markers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        release.strip_solutions(bad)


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_source_lessons_have_solutions(name: str) -> None:
    assert any(release.BEGIN in text for text in code_sources(ROOT / "notebooks" / name))


def test_release_covers_every_notebook_and_is_deterministic(student_dir: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert main(["release", "--src", str(ROOT / "notebooks"), "--out", str(tmp_path)]) == 0
    for path in NOTEBOOKS:
        assert (student_dir / path.name).read_bytes() == (tmp_path / path.name).read_bytes(), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_has_no_solution_and_valid_stubs(path: Path, student_dir: Path) -> None:
    copy = student_dir / path.name
    nb = json.loads(copy.read_text(encoding="utf-8"))
    source_nb = json.loads(path.read_text(encoding="utf-8"))
    assert [c.get("id") for c in nb["cells"]] == [c.get("id") for c in source_nb["cells"]]
    assert nb["metadata"] == source_nb["metadata"]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    sources, originals = code_sources(copy), code_sources(path)
    assert len(sources) == len(originals)
    for text, original in zip(sources, originals):
        assert "SOLUTION" not in text
        for line in solution_lines(original):
            assert line not in [kept.strip() for kept in text.splitlines()], f"solution line left: {line}"
        assert text.count("raise NotImplementedError()") == original.count(release.BEGIN)
        compile(TransformerManager().transform_cell(text), f"{copy.name} cell", "exec")


def top_level(source: str) -> list[ast.stmt]:
    """The top-level statements of a code cell, IPython magics and shell lines left out."""
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))).body


def exercise_namespace(path: Path) -> dict:
    """What exercise and check cells expect: the notebook's imports, its knobs (smoke values), a small vectorizer,
    and the number of classes the multi-class lesson reads off its data."""
    import keras
    import tensorflow as tf

    namespace = {"cfg": types.SimpleNamespace(pick=lambda smoke, cpu, gpu: smoke, offline=True, seed=0)}
    imports = [node for text in code_sources(path) for node in top_level(text)
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), f"{path.name} imports", "exec"), namespace)
    nb = json.loads(path.read_text(encoding="utf-8"))
    knobs = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    exec(compile("".join(knobs["source"]), f"{path.name} knobs", "exec"), namespace)
    vectorizer = keras.layers.TextVectorization(max_tokens=namespace.get("VOCAB_SIZE", 100),
                                                output_sequence_length=namespace.get("SEQUENCE_LENGTH", 8))
    vectorizer.adapt(tf.constant(["a wonderful film", "not good, in fact bad", "a dull boring mess"]))
    namespace["vectorizer"] = vectorizer
    namespace["n_classes"] = 10
    return namespace


def exercises(path: Path) -> list[tuple[str, str]]:
    """(exercise cell, following check cell) pairs of a notebook."""
    sources = code_sources(path)
    return [(text, sources[i + 1]) for i, text in enumerate(sources) if release.BEGIN in text]


def check_statements(check: str) -> ast.Module:
    """A check cell's statements up to its last `kitlib.checks` call (what follows uses the lesson's data)."""
    body = top_level(check)
    last = max(i for i, node in enumerate(body) if "kitlib.checks." in ast.unparse(node))
    return ast.Module(body=body[: last + 1], type_ignores=[])


def run_exercise(path: Path, exercise: str, check: str) -> None:
    namespace = exercise_namespace(path)
    exec(compile(exercise, f"{path.name} exercise", "exec"), namespace)
    exec(compile(check_statements(check), f"{path.name} check", "exec"), namespace)


def test_every_lesson_with_exercises_is_covered() -> None:
    with_exercises = [path.name for path in NOTEBOOKS if exercises(path)]
    assert with_exercises == WITH_EXERCISES
    for name in WITH_EXERCISES:  # at least two per lesson, and every solution cell paired with its check
        solutions = [text for text in code_sources(ROOT / "notebooks" / name) if release.BEGIN in text]
        assert len(exercises(ROOT / "notebooks" / name)) == len(solutions) >= 2, name


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_every_check_reports_the_unwritten_stub(name: str, student_dir: Path) -> None:
    student, source = student_dir / name, ROOT / "notebooks" / name
    pairs = exercises(source)
    assert pairs, "no exercises found"
    student_sources = code_sources(student)
    for exercise, check in pairs:
        index = code_sources(source).index(exercise)
        stub, student_check = student_sources[index], student_sources[index + 1]
        assert "raise NotImplementedError()" in stub and "kitlib.checks." in student_check
        with pytest.raises(checks.CheckFailed, match="is not written yet"):
            run_exercise(student, stub, student_check)


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_every_check_passes_with_the_solution(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = exercises(ROOT / "notebooks" / name)
    for exercise, check in pairs:
        run_exercise(ROOT / "notebooks" / name, exercise, check)
    assert capsys.readouterr().out.count("Check passed:") == len(pairs)


def test_build_explains_an_unwritten_builder() -> None:
    def build_something(size: int) -> None:
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="`build_something` is not written yet"):
        checks.call(build_something, 3)
    assert checks.call(lambda size: size * 2, 3) == 6

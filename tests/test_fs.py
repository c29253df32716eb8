"""Files and folders written whole or not at all: staging names a later writer can clean, and no trace of a failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kitlib import _fs, course
from kitlib.course import grading


def test_a_killed_writers_staging_file_is_cleaned_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "gradebook.csv"
    with pytest.raises(RuntimeError), _fs.staged_file(target) as staging:
        staging.write_text("half")
        assert staging.name.startswith(f".gradebook.csv.{_fs.STAGING_MARK}{os.getpid()}.")
        raise RuntimeError("the writer fails")
    assert list(tmp_path.iterdir()) == [], "a failed write leaves nothing"
    dead = tmp_path / f".gradebook.csv.{_fs.STAGING_MARK}999999999.abc.csv"  # a pid that cannot run
    dead.write_text("left by a killed writer")
    _fs.write_atomically(target, "whole\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradebook.csv"] and target.read_text() == "whole\n"


def test_a_failed_staged_folder_removes_the_folders_it_created(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    with pytest.raises(ValueError), _fs.staged_folder(tmp_path / "keep" / "new" / "deeper" / "out") as staging:
        (staging / "model.keras").write_text("x")
        raise ValueError("bad data")
    assert [p.name for p in tmp_path.iterdir()] == ["keep"] and not any((tmp_path / "keep").iterdir())
    with _fs.staged_folder(tmp_path / "keep" / "new" / "out") as staging:
        (staging / "model.keras").write_text("x")
    assert (tmp_path / "keep" / "new" / "out" / "model.keras").read_text() == "x"


def test_the_finetune_default_folder_is_not_left_behind_on_bad_data(tmp_path: Path, monkeypatch) -> None:
    from kitlib import __main__ as cli

    source = tmp_path / "one.csv"
    source.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KITLIB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="single class"):
        cli.main(["finetune", str(source), "--task", "text", "--profile", "smoke"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv"], "no empty finetuned/ folder"


def test_an_installed_kitlib_is_graded_with_its_site_folder_bound(tmp_path: Path, monkeypatch) -> None:
    prefix = tmp_path / "venv"
    site = prefix / "lib" / "python3" / "site-packages"
    kit = site / "kitlib"
    (kit / "course").mkdir(parents=True)
    monkeypatch.setattr(course, "__file__", str(kit / "course" / "__init__.py"))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "path", [str(site)])
    binds = dict(grading._read_only_paths(kit))
    assert binds[str(prefix)] == str(prefix), "the environment that holds the installed kit is visible"
    assert binds[str(kit)] == "/kit/kitlib"


def test_an_environment_reached_through_a_link_is_bound_where_it_lies(tmp_path: Path, monkeypatch) -> None:
    real = tmp_path / "envs" / "kit"
    (real / "bin").mkdir(parents=True)
    link = tmp_path / "clone" / ".venv"
    link.parent.mkdir()
    link.symlink_to(real, target_is_directory=True)
    kit = tmp_path / "kitlib"
    kit.mkdir()
    monkeypatch.setattr(sys, "prefix", str(link))
    monkeypatch.setattr(sys, "path", [])
    binds = dict(grading._read_only_paths(kit))
    assert binds[str(link)] == str(link), "sys.executable's own path"
    assert binds[str(real)] == str(real), "the path the environment's scripts name on their #! line"


def test_a_checkouts_parent_folders_are_never_bound(tmp_path: Path, monkeypatch) -> None:
    clone = tmp_path / "clone"
    kit = clone / "kitlib"
    (kit / "course").mkdir(parents=True)
    for mark in course.CHECKOUT_MARKS:
        (clone / mark).mkdir(exist_ok=True) if mark == "notebooks" else (clone / mark).write_text("")
    monkeypatch.setattr(course, "__file__", str(kit / "course" / "__init__.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # an environment folder that holds the clone
    monkeypatch.setattr(sys, "path", [])
    binds = dict(grading._read_only_paths(kit))
    assert str(tmp_path) not in binds, "binding a folder that holds the clone would show the instructor's notebooks"

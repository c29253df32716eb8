"""The command line: its shape (groups, help, version, name), results, fetch and doctor against loopback, finetune's refusals (its training: test_recipe.py)."""

from __future__ import annotations

import dataclasses
import re
import http.server
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

import kitlib
from kitlib import __main__ as cli
from kitlib.data import downloads, manifest


def test_results_prints_a_markdown_table(kit_env, capsys) -> None:
    assert cli.main(["results"]) == 0
    assert "No results recorded yet" in capsys.readouterr().out
    cfg = kitlib.setup(profile="smoke", verbose=False)
    kitlib.record_result(cfg, "02", "test_accuracy", 0.81, dataset="imdb", model="BiLSTM-64", seconds=12)
    cli.main(["results", "--profile", "smoke"])
    out = capsys.readouterr().out
    assert "| 02 | smoke | imdb | BiLSTM-64 | test_accuracy | 81.0% |" in out, "accuracies as the docs write them"


def test_results_names_the_profiles_that_have_results(kit_env, capsys) -> None:
    cfg = kitlib.setup(profile="smoke", verbose=False)
    for lesson in ("02", "04"):
        kitlib.record_result(cfg, lesson, "test_accuracy", 0.8, dataset="imdb", model="BiLSTM-64", seconds=1)
    assert cli.main(["results", "--profile", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "No results recorded in the cpu profile yet; recorded in: smoke (2 records)" in out
    assert "results --profile smoke" in out


def test_a_bare_call_prints_help_and_succeeds(capsys) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m kitlib") and "examples:" in out
    listing = out[out.index("commands:"):]
    assert listing.index("doctor") < listing.index("finetune") < listing.index("course "), "learners' first"
    assert cli.main(["course"]) == 0
    course = capsys.readouterr().out
    assert course.startswith("usage: python -m kitlib course") and all(re.search(rf"^    {verb}\s", course, re.M)
                                                                       for verb in cli.COURSE_VERBS), course


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"python -m kitlib {kitlib.__version__}"


def test_the_program_name_is_the_one_invoked(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/kitlib"])
    with pytest.raises(SystemExit):
        cli.main(["course", "bench", "--help"])
    assert capsys.readouterr().out.startswith("usage: kitlib course bench")
    monkeypatch.setattr(sys, "argv", ["/checkout/kitlib/__main__.py"])
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m kitlib doctor")


@pytest.mark.parametrize("verb", ["doctor", "fetch", "pack", "results", "finetune", *cli.COURSE_VERBS])
def test_every_command_shows_examples(verb: str, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    out = capsys.readouterr().out
    prog = f"python -m kitlib {'course ' if verb in cli.COURSE_VERBS else ''}{verb}"
    assert out.startswith(f"usage: {prog}"), "a course verb alone still works: it means `course VERB`"
    assert f"examples:\n  {prog}" in out or f"examples:\n  # " in out
    if verb == "finetune":
        assert "--task text" in out and "--task image" in out and "--text-column review" in out


def test_fetch_downloads_verified_archives_into_a_share(kit_env, served_imdb, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    share = tmp_path / "share"
    assert cli.main(["fetch", "imdb", "--dest", str(share)]) == 0
    assert downloads.sha256_of(share / "aclImdb_v1.tar.gz") == served_imdb.sha256
    cli.main(["fetch", "imdb", "--dest", str(share)])
    assert "already there, checksum verified" in capsys.readouterr().out


def test_fetch_rejects_unknown_names(kit_env) -> None:
    with pytest.raises(SystemExit, match="Unknown dataset 'mnist'. Known: imdb"):
        cli.main(["fetch", "mnist"])


def test_doctor_reports_pack_and_sources(kit_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "offline pack: complete" in out
    assert "imdb: not here and the network is off (KITLIB_OFFLINE=1); lessons use rotten_tomatoes" in out


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts every request it gets, whatever the method."""

    def handle_one_request(self) -> None:
        """Count, then answer as the static handler does."""
        super().handle_one_request()
        if self.requestline:
            self.server.requests.append(self.requestline)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def counted_archives(kit_env, imdb_archive, monkeypatch) -> Iterator[list[str]]:
    """Every dataset's URL on a loopback server that records each request it gets; the network on; yields the log."""
    root = kit_env / "www"
    root.mkdir()
    (root / imdb_archive.name).write_bytes(imdb_archive.read_bytes())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: CountingHandler(*a, directory=str(root)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for name, spec in list(manifest.ARCHIVES.items()):
        served = dataclasses.replace(spec, url=f"{base}/{imdb_archive.name}", sha256=downloads.sha256_of(imdb_archive),
                                     size=imdb_archive.stat().st_size) if name == "imdb" else \
            dataclasses.replace(spec, url=f"{base}/{spec.filename}")
        monkeypatch.setitem(manifest.ARCHIVES, name, served)
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    monkeypatch.setenv("KERAS_HOME", str(kit_env / "keras"))  # not this machine's keras.datasets downloads
    try:
        yield server.requests
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_never_downloads_and_fetch_does(counted_archives, kit_env, capsys) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert counted_archives == [], "doctor only looks; it sent requests"
    assert not (kit_env / "cache" / "downloads").exists() and not (kit_env / "cache" / "datasets").exists()
    imdb = manifest.ARCHIVES["imdb"]
    assert f"imdb: not here; downloaded on first use from {imdb.url}" in out and "`fetch imdb`" in out
    assert "without a network lessons use rotten_tomatoes" in out and "((" not in out and "))" not in out
    assert cli.main(["fetch", "imdb"]) == 0, "the same server answers fetch: doctor's zero is not a dead server"
    assert len(counted_archives) == 1 and "GET /aclImdb_v1.tar.gz" in counted_archives[0]
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0
    assert f"imdb: downloaded archive {kit_env / 'cache' / 'downloads' / imdb.filename}, verified and extracted" \
           in capsys.readouterr().out
    assert len(counted_archives) == 1 and not (kit_env / "cache" / "datasets" / "imdb").exists(), "nothing extracted"


def test_doctor_names_a_share_without_extracting_it(counted_archives, kit_env, imdb_archive, monkeypatch,
                                                    capsys) -> None:
    share = kit_env / "share"
    share.mkdir()
    (share / imdb_archive.name).write_bytes(imdb_archive.read_bytes())
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"imdb: KITLIB_DATA_DIR archive {share / imdb_archive.name}, extracted into the cache on first use" in out
    assert not (kit_env / "cache" / "datasets").exists() and counted_archives == []


def test_doctor_reports_a_misplaced_folder_in_one_sentence(counted_archives, kit_env, capsys) -> None:
    (kit_env / "cache" / "downloads" / manifest.IMDB.filename).mkdir(parents=True)
    assert cli.main(["doctor"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("imdb:"))
    assert line.startswith("imdb: not available: ") and "is a folder where the kit keeps" in line
    assert line.endswith("; lessons use rotten_tomatoes") and "(" not in line.split("not available: ")[1]
    assert counted_archives == []


def test_finetune_names_the_bad_file(kit_env) -> None:
    source = kit_env / "one.csv"
    source.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="one.csv has a single class"):
        cli.main(["finetune", str(source), "--task", "text", "--profile", "smoke"])


def test_course_tools_outside_a_checkout_say_so(tmp_path, monkeypatch, capsys) -> None:
    from kitlib import course
    from kitlib.course import repository, tables

    installed = tmp_path / "site-packages"
    (installed / "kitlib" / "course").mkdir(parents=True)
    monkeypatch.setattr(course, "__file__", str(installed / "kitlib" / "course" / "__init__.py"))
    with pytest.raises(course.CheckoutError, match=r"site-packages is not a checkout of the kit .*pip install -e"):
        repository.stamp(check=True)
    with pytest.raises(course.CheckoutError, match="no pyproject.toml, README.md, notebooks"):
        tables.load_run()
    with pytest.raises(SystemExit, match="not a checkout of the kit"):
        cli.main(["course", "tables", "--check"])
    assert course.checkout(tmp_path) == tmp_path, "a folder given explicitly is the caller's choice"

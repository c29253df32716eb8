"""The command line: results, fetch against a loopback server, doctor."""

from __future__ import annotations

from pathlib import Path

import pytest

import kitlib
from kitlib import __main__ as cli
from kitlib.data import downloads


def test_results_prints_a_markdown_table(kit_env, capsys) -> None:
    assert cli.main(["results"]) == 0
    assert "No results recorded yet" in capsys.readouterr().out
    cfg = kitlib.setup(profile="smoke", verbose=False)
    kitlib.record_result(cfg, "02", "test_accuracy", 0.81, dataset="imdb", model="BiLSTM-64", seconds=12)
    cli.main(["results", "--profile", "smoke"])
    out = capsys.readouterr().out
    assert "| 02 | smoke | imdb | BiLSTM-64 | test_accuracy | 0.8100 |" in out


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
    assert "offline pack: complete" in out and "imdb: not available" in out and "rotten_tomatoes" in out


def test_finetune_trains_exports_records_and_reports_on_the_learners_test_file(kit_env, capsys) -> None:
    def table(name: str, n: int, offset: int = 0) -> Path:
        rows = [f'"{text} {i + offset}",{label}' for i in range(n) for label, text in
                (("pos", "a wonderful moving film"), ("neg", "a dull boring mess"), ("plot", "the story follows a man"))]
        path = kit_env / name
        path.write_text("review,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
        return path

    source, test, val = table("mine.csv", 25), table("test.csv", 7, 100), table("dev.csv", 4, 200)
    out = kit_env / "out"
    assert cli.main(["finetune", str(source), "--task", "text", "--profile", "smoke", "--out", str(out),
                     "--label-column", "label", "--test-file", str(test), "--val-file", str(val)]) == 0
    printed = capsys.readouterr().out
    assert all(f"[{i}/5]" in printed for i in range(1, 6)), printed
    assert "75 training, 12 validation and 21 test examples" in printed, "every training row trains: the splits are given"
    assert (out / "model.keras").is_file() and (out / "serving" / "saved_model.pb").is_file()
    report = (out / "report.md").read_text()
    assert "sizes: train 75, val 12, test 21" in report and "## Stages on the test split (21 examples)" in report
    assert "classes (3): `neg`, `plot`, `pos`" in report and "| plot |" in report and "confusion_matrix.png" in report
    assert "import tensorflow_text" in report and str(out.absolute() / "serving") in report
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    records = kitlib.load_results(kit_env / "results", "smoke")
    assert [(r["lesson"], r["metric"], r["dataset"], r["n_test"]) for r in records] == [("12", "test_accuracy", "mine", 21)]


def test_finetune_names_the_bad_file(kit_env) -> None:
    source = kit_env / "one.csv"
    source.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="one.csv has a single class"):
        cli.main(["finetune", str(source), "--task", "text", "--profile", "smoke"])

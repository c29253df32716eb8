"""Hostile servers, hostile archives and a full disk: each failure says whose fault it is, and nothing is left behind."""

from __future__ import annotations

import dataclasses
import errno
import http.server
import io
import os
import socket
import tarfile
import threading
import time
import urllib.error
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

import kitlib
from kitlib import __main__ as cli
from kitlib import _fs
from kitlib.data import downloads, manifest, sources
from kitlib import evaluate
from conftest import make_imdb_tree, make_tar, smoke


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """Each path is one misbehaving server."""

    def log_message(self, *args: object) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        try:
            if self.path == "/flood":  # sends far more than the expected size
                self.send_header("Content-Length", str(64 << 20))
                self.end_headers()
                block = b"x" * (1 << 20)
                for _ in range(64):
                    self.wfile.write(block)
            elif self.path == "/trickle":  # one byte every 0.1 s
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path == "/short":  # announces 1,000 bytes, sends 500, closes
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 500)
            elif self.path == "/chunked-drop":  # a chunked body dropped mid-way
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"400\r\n" + b"x" * 100)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


@pytest.fixture
def hostile() -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.daemon_threads = True
    server.requests = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def no_leftovers(folder: Path) -> bool:
    return not folder.exists() or list(folder.iterdir()) == []


def test_a_download_stops_at_its_expected_size(hostile, tmp_path: Path) -> None:
    base, _ = hostile
    with pytest.raises(downloads.ChecksumError, match="sent more than the expected 1,000 bytes"):
        downloads.download(f"{base}/flood", tmp_path / "d" / "f.bin", size=1000)
    assert no_leftovers(tmp_path / "d")


def test_a_trickle_hits_the_overall_deadline(hostile, tmp_path: Path) -> None:
    base, _ = hostile
    start = time.monotonic()
    with pytest.raises(downloads.DownloadError, match=r"arrived in 1 s .*too slow or stalled"):
        downloads.download(f"{base}/trickle", tmp_path / "d" / "t.bin", size=1000, timeout=5, deadline=1)
    assert time.monotonic() - start < 3 and no_leftovers(tmp_path / "d")


@pytest.mark.parametrize("path, message", [("/short", "closed after 500 bytes"),
                                           ("/chunked-drop", "IncompleteRead")])
def test_a_dropped_connection_is_a_download_error(hostile, tmp_path: Path, path: str, message: str) -> None:
    base, _ = hostile
    with pytest.raises(downloads.DownloadError, match=rf"{base}{path}.*{message}"):
        downloads.download(f"{base}{path}", tmp_path / "d" / "x.bin")  # no size given: the transport must tell
    assert no_leftovers(tmp_path / "d")


class FullDisk(io.RawIOBase):
    """A writer that fails like a full disk."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_download_is_not_a_network_failure(
    kit_env: Path, served_imdb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    real_fdopen = os.fdopen
    monkeypatch.setattr(downloads.os, "fdopen", lambda fd, mode: (os.close(fd), FullDisk())[1] if "w" in mode
                        else real_fdopen(fd, mode))
    with pytest.raises(_fs.StorageError, match="the disk is full") as raised:
        kitlib.load_text("imdb", smoke(), verbose=False)  # must not fall back to the offline stand-in
    assert not isinstance(raised.value, downloads.DownloadError)
    assert no_leftovers(kit_env / "cache" / "downloads")


def test_a_full_disk_during_extraction_blames_the_disk(
    imdb_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(_fs.StorageError, match="disk is full.*archive itself is fine") as raised:
        downloads.extract(imdb_archive, tmp_path / "out")
    assert "Delete it" not in str(raised.value) and imdb_archive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [imdb_archive.name, "src"]


def test_a_verified_archive_is_never_called_deletable(tmp_path: Path) -> None:
    bad = tmp_path / "a.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(downloads.ArchiveError, match="Delete it and fetch it again"):
        downloads.extract(bad, tmp_path / "out")
    with pytest.raises(downloads.ArchiveError, match="checksum matched .* keep it") as raised:
        downloads.extract(bad, tmp_path / "out", verified=True)
    assert "Delete" not in str(raised.value)


def test_a_zip_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/zeros.bin", b"\0" * (20 << 20))  # 20 MB in about 20 KB
    with pytest.raises(downloads.UnsafeArchiveError, match="would expand to 20,971,520 bytes"):
        downloads.extract(bomb, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def test_extraction_is_capped_by_the_expected_size(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", {"top/a.bin": os.urandom(5000)})
    with pytest.raises(downloads.UnsafeArchiveError, match="over the 4,000 byte limit"):
        downloads.extract(archive, tmp_path / "out", max_bytes=4000)
    assert downloads.extract(archive, tmp_path / "out", max_bytes=6000) == tmp_path / "out"


def test_stale_staging_of_dead_runs_is_cleaned_and_live_ones_kept(tmp_path: Path, imdb_archive: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    dead = 2**22 + 1  # above Linux's pid_max: no process has it
    stale_dir = folder / f".out.{_fs.STAGING_MARK}{dead}.abc"
    stale_part = folder / f".out.{_fs.STAGING_MARK}{dead}.xyz.part"
    live_dir = folder / f".out.{_fs.STAGING_MARK}{os.getpid()}.def"
    foreign = folder / ".out.not-ours"
    for path in (stale_dir, live_dir, foreign):
        path.mkdir()
        (path / "big.bin").write_bytes(b"x" * 100)
    stale_part.write_bytes(b"half")
    downloads.extract(imdb_archive, folder / "out")
    assert not stale_dir.exists() and not stale_part.exists()
    assert live_dir.exists() and foreign.exists() and (folder / "out" / "aclImdb").is_dir()


def test_a_rejected_layout_is_not_left_in_the_cache(kit_env: Path, tmp_path: Path, monkeypatch) -> None:
    share = tmp_path / "share"
    share.mkdir()
    make_tar(share / manifest.IMDB.filename, {"wrong/a.txt": b"A"})
    monkeypatch.setenv("KITLIB_DATA_DIR", str(share))
    with pytest.raises(manifest.LayoutError):
        kitlib.load_text("imdb", smoke(), verbose=False)
    assert no_leftovers(kit_env / "cache" / "datasets")


def test_a_cached_archive_that_is_a_folder_is_explained(kit_env: Path) -> None:
    (kit_env / "cache" / "downloads" / manifest.IMDB.filename).mkdir(parents=True)
    with pytest.raises(sources.DatasetUnavailableError, match="is a folder where the kit keeps the downloaded"):
        kitlib.load_text("imdb", smoke(), verbose=False)


def test_a_review_that_is_not_utf8_is_named(kit_env: Path, tmp_path: Path, monkeypatch) -> None:
    top = make_imdb_tree(tmp_path / "share")
    bad = top / "train" / "pos" / "0_9.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    monkeypatch.setenv("KITLIB_DATA_DIR", str(tmp_path / "share"))
    with pytest.raises(ValueError, match=r"0_9.txt is not UTF-8 text"):
        kitlib.load_text("imdb", smoke(), verbose=False)


def test_an_empty_class_folder_is_refused(kit_env: Path, tmp_path: Path, monkeypatch) -> None:
    top = make_imdb_tree(tmp_path / "share")
    for review in (top / "test" / "neg").iterdir():
        review.unlink()
    monkeypatch.setenv("KITLIB_DATA_DIR", str(tmp_path / "share"))
    with pytest.raises(manifest.LayoutError, match=r"test/neg holds no .txt reviews"):
        kitlib.load_text("imdb", smoke(), verbose=False)


# Only "no network" may swap the data: every other failure propagates with its own message.


def _imdb_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point the registered IMDB archive at `url`, with the network allowed."""
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    monkeypatch.setitem(manifest.ARCHIVES, "imdb", dataclasses.replace(manifest.IMDB, url=url))


def test_a_bug_in_the_downloader_propagates_instead_of_serving_rotten_tomatoes(
    kit_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _imdb_at(monkeypatch, "https://example.org/aclImdb_v1.tar.gz")

    def buggy(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in the kit's own code")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", buggy)
    with pytest.raises(ValueError, match="a bug in the kit's own code") as raised:
        kitlib.load_text("imdb", smoke(), verbose=False)
    assert not isinstance(raised.value, downloads.DownloadError)


def test_a_server_error_propagates_instead_of_serving_rotten_tomatoes(
    kit_env: Path, routed_http, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes, base = routed_http
    routes["/aclImdb_v1.tar.gz"] = (500, None, b"internal error")
    _imdb_at(monkeypatch, f"{base}/aclImdb_v1.tar.gz")
    with pytest.raises(downloads.DownloadError, match="500") as raised:
        kitlib.load_text("imdb", smoke(), verbose=False)
    assert not isinstance(raised.value, downloads.NoNetworkError)


def test_a_refused_connection_falls_back_to_the_stand_in_and_says_why(kit_env: Path, monkeypatch) -> None:
    _imdb_at(monkeypatch, "http://127.0.0.1:9/aclImdb_v1.tar.gz")  # port 9 on loopback: nothing listens
    data = kitlib.load_text("imdb", smoke(), train_size=8, val_size=4, test_size=6, verbose=False)
    assert data.name == "rotten_tomatoes" and "standing in for IMDB" in data.source
    assert "the server cannot be reached" in data.source and "refused" in data.source.lower()


@pytest.mark.parametrize("reason", [socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                                    TimeoutError("timed out"), OSError(errno.ENETUNREACH, "Network is unreachable")],
                         ids=["dns", "timeout", "no-route"])
def test_no_network_falls_back_to_the_stand_in(kit_env: Path, monkeypatch, reason: OSError) -> None:
    _imdb_at(monkeypatch, "https://example.org/aclImdb_v1.tar.gz")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(reason)

    monkeypatch.setattr(downloads.urllib.request, "urlopen", unreachable)
    data = kitlib.load_text("imdb", smoke(), train_size=8, val_size=4, test_size=6, verbose=False)
    assert data.name == "rotten_tomatoes" and str(reason) in data.source


# The command line: sentences, not tracebacks.

def test_offline_fetch_makes_no_request(kit_env: Path, hostile, monkeypatch) -> None:
    base, server = hostile
    monkeypatch.setitem(manifest.ARCHIVES, "imdb", dataclasses.replace(manifest.IMDB, url=f"{base}/flood"))
    with pytest.raises(SystemExit, match="KITLIB_OFFLINE=1 turns the network off"):
        cli.main(["fetch", "imdb"])
    assert server.requests == 0  # type: ignore[attr-defined]


def test_fetch_validates_every_name_before_downloading(kit_env: Path, hostile, monkeypatch) -> None:
    base, server = hostile
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    monkeypatch.setitem(manifest.ARCHIVES, "imdb", dataclasses.replace(manifest.IMDB, url=f"{base}/flood"))
    with pytest.raises(SystemExit, match="Unknown dataset 'mnist'"):
        cli.main(["fetch", "imdb", "mnist"])
    assert server.requests == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("dest", ["file", "/proc/kitlib-share"])
def test_fetch_into_a_bad_dest_is_a_sentence(kit_env: Path, served_imdb, tmp_path: Path, monkeypatch, dest: str) -> None:
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    if dest == "file":
        dest = str(tmp_path / "a-file")
        Path(dest).write_text("not a folder")
    with pytest.raises(SystemExit, match=r"imdb: Could not write into .*(folder exists, is a folder and is writable)"):
        cli.main(["fetch", "imdb", "--dest", dest])


def test_fetch_over_a_folder_named_like_the_archive(kit_env: Path, served_imdb, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KITLIB_OFFLINE", "0")
    (tmp_path / "share" / manifest.IMDB.filename).mkdir(parents=True)
    with pytest.raises(SystemExit, match="is a folder where the archive aclImdb_v1.tar.gz belongs"):
        cli.main(["fetch", "imdb", "--dest", str(tmp_path / "share")])


def test_results_skips_a_corrupt_line_and_names_it(kit_env: Path, capsys) -> None:
    cfg = kitlib.setup(profile="smoke", verbose=False)
    kitlib.record_result(cfg, "02", "test_accuracy", 0.81, dataset="imdb", model="BiLSTM-64", seconds=12)
    with open(cfg.results_dir / evaluate.RESULTS_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"lesson": "03", "metric": \n[1, 2]\n')
    kitlib.record_result(cfg, "04", "test_accuracy", 0.9, dataset="imdb", model="BERT", seconds=30)
    assert cli.main(["results"]) == 0
    captured = capsys.readouterr()
    assert "| 02 |" in captured.out and "| 04 |" in captured.out
    assert "Skipping line 2 of" in captured.err and "Skipping line 3 of" in captured.err


def test_doctor_reports_a_broken_cache_instead_of_crashing(kit_env: Path, capsys) -> None:
    (kit_env / "cache" / "downloads" / manifest.IMDB.filename).mkdir(parents=True)
    assert cli.main(["doctor"]) == 0
    assert "imdb: not available: " in capsys.readouterr().out

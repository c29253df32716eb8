"""Downloads against a loopback HTTP server, and safe extraction of hostile archives."""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from kitlib import _fs
from kitlib.data import downloads
from conftest import make_tar


def test_download_verifies_and_writes_atomically(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    payload = os.urandom(3_000_000)
    (root / "data.bin").write_bytes(payload)
    dest = tmp_path / "cache" / "data.bin"
    out = downloads.download(f"{base}/data.bin", dest, hashlib.sha256(payload).hexdigest(), len(payload))
    assert out == dest and dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]


def test_checksum_mismatch_leaves_nothing(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    (root / "data.bin").write_bytes(b"not the official bytes")
    dest = tmp_path / "cache" / "data.bin"
    with pytest.raises(downloads.ChecksumError, match="expected 0{64}.*Nothing was kept"):
        downloads.download(f"{base}/data.bin", dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_truncated_download_is_refused(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    (root / "data.bin").write_bytes(b"x" * 1000)
    dest = tmp_path / "data.bin"
    with pytest.raises(downloads.ChecksumError, match="1,000 bytes, expected 2,000"):
        downloads.download(f"{base}/data.bin", dest, size=2000)
    assert not dest.exists() and list(tmp_path.glob("*.part")) == []


def test_http_error_is_a_download_error(http_root: tuple[Path, str], tmp_path: Path) -> None:
    _, base = http_root
    with pytest.raises(downloads.DownloadError, match="404"):
        downloads.download(f"{base}/missing.tar.gz", tmp_path / "cache" / "missing.tar.gz")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_host_fails_fast(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(downloads.DownloadError, match="Could not download"):
        downloads.download("http://127.0.0.1:9/x", tmp_path / "x", timeout=5)


def test_extract_tar_and_zip(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "ok.tar.gz", {"top/a.txt": b"A", "top/sub/b.txt": b"B"})
    target = downloads.extract(tar, tmp_path / "out_tar")
    assert (target / "top" / "sub" / "b.txt").read_bytes() == b"B"
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as zf:
        zf.writestr("top/a.txt", "A")
    target = downloads.extract(tmp_path / "ok.zip", tmp_path / "out_zip")
    assert (target / "top" / "a.txt").read_text() == "A"


@pytest.mark.parametrize("name", ["../escape.txt", "top/../../escape.txt", "/tmp/kitlib-abs-escape.txt"])
def test_tar_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    tar = make_tar(tmp_path / "evil.tar.gz", {"top/ok.txt": b"fine", name: b"pwned"})
    with pytest.raises(downloads.UnsafeArchiveError, match="outside"):
        downloads.extract(tar, tmp_path / "out" / "target")
    assert not (tmp_path / "out" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/kitlib-abs-escape.txt").exists()
    assert not (tmp_path / "out").exists(), "nothing may be left half-extracted, not even the folder it made"


def test_tar_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("top/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(downloads.UnsafeArchiveError, match="links"):
        downloads.extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../escape.txt", "pwned")
    with pytest.raises(downloads.UnsafeArchiveError):
        downloads.extract(path, tmp_path / "out" / "target")
    assert not (tmp_path / "escape.txt").exists()


def test_truncated_archive_is_an_archive_error(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "good.tar.gz", {f"top/{i}.txt": os.urandom(5000) for i in range(20)})
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(downloads.ArchiveError, match="not a readable archive"):
        downloads.extract(broken, tmp_path / "out" / "target")
    assert not (tmp_path / "out").exists(), "no half extraction, not even the folder it made"


def test_sha256_of_matches_hashlib(tmp_path: Path) -> None:
    payload = os.urandom(2_500_000)
    (tmp_path / "f").write_bytes(payload)
    assert downloads.sha256_of(tmp_path / "f") == hashlib.sha256(payload).hexdigest()


def test_one_kernel_at_a_time_builds_a_cache_entry(tmp_path: Path) -> None:
    import threading

    target, events = tmp_path / "cache" / "models" / "stand-in", []

    def build(name: str) -> None:
        with _fs.one_at_a_time(target):
            events.append(f"{name} in")
            time.sleep(0.2)
            events.append(f"{name} out")

    workers = [threading.Thread(target=build, args=(name,)) for name in ("first", "second")]
    for worker in workers:
        worker.start()
        time.sleep(0.05)
    for worker in workers:
        worker.join()
    assert events == ["first in", "first out", "second in", "second out"], "the second waits for the first"
    assert not (tmp_path / "cache").exists(), "the lock lives outside the cache: the cache holds only what was built"

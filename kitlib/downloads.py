"""Downloads and archives: timeout, sha256 check, atomic writes and safe extraction."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The download could not be completed (network, HTTP status or size)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the pinned sha256."""


class ArchiveError(RuntimeError):
    """An archive cannot be read (truncated or not an archive)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the target folder, or is a link or device."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch `url` into `dest` atomically; verify size and sha256 before the file appears."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
            except (urllib.error.URLError, OSError) as exc:
                raise DownloadError(f"Could not download {url}: {exc}") from exc
        if size is not None and received != size:
            raise ChecksumError(
                f"{url} gave {received:,} bytes, expected {size:,}: the download is truncated "
                "or the file changed upstream. Nothing was kept; try again."
            )
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{url} has sha256 {digest.hexdigest()}, expected {sha256}: the file is corrupt "
                "or not the official one. Nothing was kept; try again."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _check_member(name: str, target: Path) -> None:
    """Refuse absolute paths and '..' parts that would escape `target`."""
    path = PurePosixPath(name)
    resolved = (target / name).resolve()
    if path.is_absolute() or ".." in path.parts or not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchiveError(
            f"Refusing archive member {name!r}: it would be written outside {target}. "
            "The archive is not the official one; delete it and fetch it again."
        )


def _safe_members(archive: Path, target: Path) -> None:
    """Check every member of a tar or zip archive before anything is written."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, target)
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            _check_member(member.name, target)
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"Refusing archive member {member.name!r}: links and devices are not allowed "
                    "in a dataset archive."
                )


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a staging folder beside `target` that replaces it at once on success and vanishes on error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def extract(archive: Path, target: Path) -> Path:
    """Safely extract a tar or zip archive into `target`, all or nothing."""
    archive, target = Path(archive), Path(target)
    with staged_folder(target) as staging:
        try:
            _safe_members(archive, staging)
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(staging)
            else:
                with tarfile.open(archive) as tf:
                    tf.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ArchiveError(
                f"{archive} is not a readable archive ({exc}). Delete it and fetch it again."
            ) from exc
    return target

"""Downloads and archives: timeouts and a deadline, sha256 check, size caps, atomic writes and safe extraction.

Failures are told apart: a `DownloadError` is the network's or the server's fault, and only its
`NoNetworkError` (the server could not be reached at all) lets a lesson fall back to an offline stand-in; an
`ArchiveError` is the archive's, a `_fs.StorageError` is the local disk's (full, read-only, no permission) and
never suggests deleting a good download. Anything else (a bug) propagates as it is.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from kitlib import _fs, progress

CHUNK = 1 << 20
MIN_RATE = 64 * 1024  # bytes/s: the overall deadline allows the expected size at this rate
MAX_RATIO = 100  # extracted bytes per archive byte; a dataset archive is far below, a zip bomb far above
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError)
UNREACHABLE = (ConnectionRefusedError, TimeoutError, socket.gaierror)  # refused, timed out, name not resolved
UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}  # no route: no network here


class DownloadError(RuntimeError):
    """The download could not be completed (network, HTTP status, size or time)."""


class NoNetworkError(DownloadError):
    """The server could not be reached: connection refused or timed out, or its name did not resolve."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the pinned sha256 or size."""


class ArchiveError(RuntimeError):
    """An archive cannot be read (truncated or not an archive)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the target folder, is a link or device, or expands too far."""


def _network_error(exc: BaseException, message: str) -> DownloadError:
    """A NoNetworkError when `exc` says the server could not be reached, else a DownloadError, with `message`."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
    unreachable = isinstance(reason, UNREACHABLE) or (isinstance(reason, OSError) and reason.errno in UNREACHABLE_ERRNOS)
    return (NoNetworkError if unreachable else DownloadError)(message)


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
    deadline: float | None = None,
) -> Path:
    """Fetch `url` into `dest` atomically; stop at `size`, give up after `deadline` seconds, verify before it appears."""
    dest = Path(dest)
    if deadline is None:
        deadline = 3600.0 if size is None else timeout + 60 + size / MIN_RATE
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fs.clean_stale(dest.parent, dest.name)
        fd, tmp_name = tempfile.mkstemp(prefix=_fs.staging_prefix(dest), suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise _fs.storage_error(exc, f"write into {dest.parent}") from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    started = time.monotonic()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except NETWORK_ERRORS as exc:
                raise _network_error(exc, f"Could not download {url}: {exc}") from exc
            total = size or getattr(response, "length", None)
            with response, progress.bar(total, f"downloading {dest.name}") as shown:
                while True:
                    try:
                        block = response.read1(CHUNK)
                    except NETWORK_ERRORS as exc:
                        raise _network_error(exc, f"Could not download {url}: the connection failed after "
                                                  f"{received:,} bytes ({type(exc).__name__}: {exc}).") from exc
                    if not block:
                        break
                    received += len(block)
                    if size is not None and received > size:
                        raise ChecksumError(
                            f"{url} sent more than the expected {size:,} bytes: the file changed upstream "
                            "or is not the official one. Stopped; nothing was kept."
                        )
                    if time.monotonic() - started > deadline:
                        raise DownloadError(
                            f"Could not download {url}: only {received:,} bytes arrived in {deadline:.0f} s "
                            "(the connection is too slow or stalled). Nothing was kept; try again later."
                        )
                    try:
                        out.write(block)
                    except OSError as exc:
                        raise _fs.storage_error(exc, f"write {dest}") from exc
                    digest.update(block)
                    shown.update(len(block))
                if getattr(response, "length", None):
                    raise DownloadError(
                        f"Could not download {url}: the connection closed after {received:,} bytes, "
                        f"{response.length:,} short of what the server announced. Nothing was kept; try again."
                    )
        if size is not None and received != size:
            raise ChecksumError(
                f"{url} gave {received:,} bytes, expected {size:,}: the download is truncated "
                "or the file changed upstream. Nothing was kept; try again."
            )
        if sha256 is not None:
            progress.note(f"verifying sha256 of {dest.name}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{url} has sha256 {digest.hexdigest()}, expected {sha256}: the file is corrupt "
                "or not the official one. Nothing was kept; try again."
            )
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise _fs.storage_error(exc, f"write {dest}") from exc
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


def _safe_members(archive: Path, target: Path) -> tuple[int, int]:
    """Check every member of a tar or zip archive before anything is written; return (members, bytes it expands to)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, target)
            members = zf.infolist()
            return len(members), sum(info.file_size for info in members)  # zipfile never reads past file_size
    total = count = 0
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            _check_member(member.name, target)
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"Refusing archive member {member.name!r}: links and devices are not allowed "
                    "in a dataset archive."
                )
            total += member.size
            count += 1
    return count, total


def _check_expansion(archive: Path, total: int, max_bytes: int | None) -> None:
    """Refuse an archive that would expand past `max_bytes` or past MAX_RATIO times its own size."""
    packed = max(archive.stat().st_size, 1)
    if total > MAX_RATIO * packed or (max_bytes is not None and total > max_bytes):
        limit = min(MAX_RATIO * packed, max_bytes or MAX_RATIO * packed)
        raise UnsafeArchiveError(
            f"Refusing {archive}: it would expand to {total:,} bytes, over the {limit:,} byte limit for this "
            "archive. It is not the official one; delete it and fetch it again."
        )


def extract(archive: Path, target: Path, max_bytes: int | None = None, verified: bool = False) -> Path:
    """Safely extract a tar or zip archive into `target`, all or nothing, within `max_bytes` and MAX_RATIO.

    `verified` says the archive's checksum matched: then a failure is never blamed on the file.
    """
    archive, target = Path(archive), Path(target)
    if archive.is_dir():
        raise ArchiveError(f"{archive} is a folder, not an archive. Remove it (or move it away) and fetch again.")
    with _fs.staged_folder(target) as staging:
        try:
            count, total = _safe_members(archive, staging)
            _check_expansion(archive, total, max_bytes)
            desc = f"extracting {count:,} files and folders from {archive.name}"
            with progress.bar(count, desc, unit="files") as shown:
                if zipfile.is_zipfile(archive):
                    with zipfile.ZipFile(archive) as zf:
                        zf.extractall(staging, progress.counted(zf.infolist(), shown))
                else:
                    with tarfile.open(archive) as tf:
                        tf.extractall(staging, progress.counted(tf, shown), filter="data")  # members as they are read
        except OSError as exc:
            if _fs.is_local_fault(exc):
                advice = "The archive itself is fine; keep it and run again."
                raise _fs.storage_error(exc, f"extract {archive.name} into {target.parent}", advice) from exc
            raise _archive_error(archive, exc, verified) from exc
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise _archive_error(archive, exc, verified) from exc
    return target


def _archive_error(archive: Path, exc: Exception, verified: bool) -> ArchiveError:
    """The error for an archive that cannot be read, with advice that fits whether its checksum passed."""
    advice = ("Its checksum matched the official file, so keep it: report this as a bug in the kit."
              if verified else "Delete it and fetch it again.")
    return ArchiveError(f"{archive} is not a readable archive ({exc}). {advice}")

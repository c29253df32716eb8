"""Downloads and archives: timeouts and a deadline, sha256 check, size caps, atomic writes and safe extraction.

Failures are told apart: a `DownloadError` is the network's or the server's fault (and only it lets
a lesson fall back to an offline stand-in), an `ArchiveError` is the archive's, a `StorageError` is
the local disk's (full, read-only, no permission) and never suggests deleting a good download.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from kitlib import progress

CHUNK = 1 << 20
MIN_RATE = 64 * 1024  # bytes/s: the overall deadline allows the expected size at this rate
MAX_RATIO = 100  # extracted bytes per archive byte; a dataset archive is far below, a zip bomb far above
LOCAL_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST}
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError, ValueError)
STAGING_MARK = "kitlib-"  # staging names: .<target>.kitlib-<pid>.<random>[.part]


class DownloadError(RuntimeError):
    """The download could not be completed (network, HTTP status, size or time)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the pinned sha256 or size."""


class ArchiveError(RuntimeError):
    """An archive cannot be read (truncated or not an archive)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the target folder, is a link or device, or expands too far."""


class StorageError(OSError):
    """The local disk refused a write (full, read-only, no permission, a file where a folder should be)."""

    def __str__(self) -> str:
        """The sentence alone, without the '[Errno N]' prefix."""
        return str(self.strerror)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _storage_error(exc: OSError, doing: str, advice: str = "") -> StorageError:
    """A StorageError that says what failed on the local disk and how to fix it."""
    hint = {errno.ENOSPC: "the disk is full: free some space",
            errno.EDQUOT: "the disk quota is used up: free some space",
            errno.EROFS: "the file system is read-only: choose a writable folder"}.get(
        exc.errno or 0, "check that the folder exists, is a folder and is writable")
    return StorageError(exc.errno, f"Could not {doing} ({exc.strerror or exc}): {hint}. {advice}".strip())


def _is_local_fault(exc: OSError) -> bool:
    """True for disk errors (full, read-only, permission) as opposed to a bad archive."""
    return isinstance(exc, PermissionError) or exc.errno in LOCAL_FAULTS


def _pid_alive(pid: int) -> bool:
    """True when a process with this id runs (or may run: exists but is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: Path, name: str) -> None:
    """Remove staging files and folders for `name` left in `folder` by kit processes that no longer run."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.{STAGING_MARK}(\d+)\.")
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if not match or _pid_alive(int(match[1])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _staging_prefix(target: Path) -> str:
    """The marked name prefix of this process's staging files for `target`."""
    return f".{target.name}.{STAGING_MARK}{os.getpid()}."


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
        clean_stale(dest.parent, dest.name)
        fd, tmp_name = tempfile.mkstemp(prefix=_staging_prefix(dest), suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise _storage_error(exc, f"write into {dest.parent}") from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    started = time.monotonic()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except NETWORK_ERRORS as exc:
                raise DownloadError(f"Could not download {url}: {exc}") from exc
            total = size or getattr(response, "length", None)
            with response, progress.bar(total, f"downloading {dest.name}") as shown:
                while True:
                    try:
                        block = response.read1(CHUNK)
                    except NETWORK_ERRORS as exc:
                        raise DownloadError(
                            f"Could not download {url}: the connection failed after {received:,} bytes "
                            f"({type(exc).__name__}: {exc})."
                        ) from exc
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
                        raise _storage_error(exc, f"write {dest}") from exc
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
            raise _storage_error(exc, f"write {dest}") from exc
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


def write_atomically(target: Path, text: str) -> None:
    """Write text to `target` through a temporary file beside it, so a failed write leaves no half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def one_at_a_time(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `target`: another kernel building the same cache entry waits, then reuses it.

    Two lessons open at once (or two test workers) would otherwise both export a stand-in or train a shared model,
    and the second to finish would replace the folder the first is reading. Advisory `flock` locks (Linux, macOS)
    on a file in the temporary folder named after `target`, so the cache holds only what was built; where there are
    no such locks (Windows), each entry is still written whole by `staged_folder`.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    locks = Path(tempfile.gettempdir()) / f"kitlib-locks-{os.getuid()}"  # per user: /tmp may be shared
    try:
        locks.mkdir(exist_ok=True)
        name = hashlib.sha256(str(target.absolute()).encode("utf-8")).hexdigest()[:24]
        handle = open(locks / f"{name}.lock", "a")  # noqa: SIM115  (closed below, which releases the lock)
    except OSError as exc:
        raise _storage_error(exc, f"create a lock file in {locks}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a marked staging folder beside `target` that replaces it at once on success and vanishes on error."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    except OSError as exc:
        raise _storage_error(exc, f"create a folder in {target.parent}") from exc
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def extract(archive: Path, target: Path, max_bytes: int | None = None, verified: bool = False) -> Path:
    """Safely extract a tar or zip archive into `target`, all or nothing, within `max_bytes` and MAX_RATIO.

    `verified` says the archive's checksum matched: then a failure is never blamed on the file.
    """
    archive, target = Path(archive), Path(target)
    if archive.is_dir():
        raise ArchiveError(f"{archive} is a folder, not an archive. Remove it (or move it away) and fetch again.")
    with staged_folder(target) as staging:
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
            if _is_local_fault(exc):
                advice = "The archive itself is fine; keep it and run again."
                raise _storage_error(exc, f"extract {archive.name} into {target.parent}", advice) from exc
            raise _archive_error(archive, exc, verified) from exc
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise _archive_error(archive, exc, verified) from exc
    return target


def _archive_error(archive: Path, exc: Exception, verified: bool) -> ArchiveError:
    """The error for an archive that cannot be read, with advice that fits whether its checksum passed."""
    advice = ("Its checksum matched the official file, so keep it: report this as a bug in the kit."
              if verified else "Delete it and fetch it again.")
    return ArchiveError(f"{archive} is not a readable archive ({exc}). {advice}")

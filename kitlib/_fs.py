"""Files and folders written whole or not at all, one builder at a time: every writer in the kit uses these.

A `StorageError` is the local disk's fault (full, read-only, no permission) and says how to fix it; staging files
carry the writer's pid, so what a killed process left behind is cleaned up by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

LOCAL_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST}
STAGING_MARK = "kitlib-"  # staging names: .<target>.kitlib-<pid>.<random>[.part]


class StorageError(OSError):
    """The local disk refused a write (full, read-only, no permission, a file where a folder should be)."""

    def __str__(self) -> str:
        """The sentence alone, without the '[Errno N]' prefix."""
        return str(self.strerror)


def storage_error(exc: OSError, doing: str, advice: str = "") -> StorageError:
    """A StorageError that says what failed on the local disk and how to fix it."""
    hint = {errno.ENOSPC: "the disk is full: free some space",
            errno.EDQUOT: "the disk quota is used up: free some space",
            errno.EROFS: "the file system is read-only: choose a writable folder"}.get(
        exc.errno or 0, "check that the folder exists, is a folder and is writable")
    return StorageError(exc.errno, f"Could not {doing} ({exc.strerror or exc}): {hint}. {advice}".strip())


def is_local_fault(exc: OSError) -> bool:
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


def staging_prefix(target: Path) -> str:
    """The marked name prefix of this process's staging files for `target`."""
    return f".{target.name}.{STAGING_MARK}{os.getpid()}."


@contextlib.contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """Yield a marked staging path beside `target` to write; it replaces `target` at once on success, else vanishes."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(target), suffix=target.suffix or ".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise storage_error(exc, f"create a file in {target.parent}") from exc
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomically(target: Path, text: str) -> None:
    """Write text to `target` through a staging file beside it, so a failed write leaves no half file."""
    with staged_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def one_at_a_time(target: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `target`: another kernel building the same cache entry waits, then reuses it.

    With `wait=False` a lock held elsewhere raises `BlockingIOError` at once instead (a second `finetune --out`).

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
        raise storage_error(exc, f"create a lock file in {locks}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a marked staging folder beside `target` that replaces it at once on success and vanishes on error.

    The old `target` is renamed aside (under a marked staging name) before the new one is renamed in, and only then
    deleted: at no moment is half of either folder in place, and what a kill leaves is cleaned by the next writer.
    """
    created = next((p for p in [*reversed(target.parent.absolute().parents), target.parent.absolute()]
                    if not p.exists()), None)  # the highest folder this call creates, removed again on failure
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(target), dir=target.parent))
    except OSError as exc:
        raise storage_error(exc, f"create a folder in {target.parent}") from exc
    done = False
    try:
        yield staging
        aside = target.parent / f"{staging_prefix(target)}replaced"
        if target.exists() or target.is_symlink():
            os.replace(target, aside)
        os.replace(staging, target)
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and created is not None:
            _remove_empty(target.parent.absolute(), created)


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents up to `top` while they are empty (what a failed writer created)."""
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return
        folder = folder.parent

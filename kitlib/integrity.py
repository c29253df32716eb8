"""Cache entries that verify themselves: the sizes and sha256 of their files, recorded when built, checked when used.

A cache entry (the MiniLM preset, an exported stand-in, a fine-tuned classifier) that was truncated, bit-flipped or
half-written would otherwise load as garbage or fail with a raw decoder error. Each entry keeps a record of its
files; `problem` compares the files with it, hashing each file once per process (again only when its size or
modification time changes), so a lesson pays for the check once, not at every call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kitlib import _fs
from kitlib.data import downloads

RECORD = ".kitlib-files.json"  # in a cached folder: {relative path: {"size": bytes, "sha256": hex}}
_hashed: dict[str, tuple[int, int, str]] = {}  # absolute path -> (size, mtime_ns, sha256) of this process's reads


class DamagedEntry(RuntimeError):
    """A cache entry failed its check and cannot be rebuilt here; the message names it and how to clear it."""


def sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks, remembered for as long as its size and modification time stay."""
    info = path.stat()
    key = str(path.absolute())
    known = _hashed.get(key)
    if known is not None and known[:2] == (info.st_size, info.st_mtime_ns):
        return known[2]
    digest = downloads.sha256_of(path)
    _hashed[key] = (info.st_size, info.st_mtime_ns, digest)
    return digest


def describe(path: Path) -> dict[str, int | str]:
    """{"size", "sha256"} of one file, as a record holds it."""
    return {"size": path.stat().st_size, "sha256": sha256(path)}


def file_problem(path: Path, expected: object) -> str | None:
    """What is wrong with one file against its recorded {"size", "sha256"}, or None when it matches."""
    if not isinstance(expected, dict) or not {"size", "sha256"} <= set(expected):
        return "no record of its checksum (it was written by an older kit, or its writer was stopped)"
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    if size != expected["size"]:
        return f"{path.name} has {size:,} bytes where {expected['size']:,} were written (truncated or replaced)"
    if sha256(path) != expected["sha256"]:
        return f"{path.name} does not have the sha256 it was written with (its bytes changed on disk)"
    return None


def record(folder: Path) -> None:
    """Write `folder`'s record of every file below it (call it last, in the staging folder, before the swap)."""
    files = {str(p.relative_to(folder)): describe(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != RECORD}
    _fs.write_atomically(folder / RECORD, json.dumps(files, indent=1, sort_keys=True) + "\n")


def problem(folder: Path) -> str | None:
    """What is wrong with a cached folder against its record (missing, changed or extra files), or None when sound."""
    try:
        files = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{RECORD} is missing: the entry was written by an older kit or not finished"
    except (OSError, ValueError) as exc:
        return f"{RECORD} cannot be read ({exc})"
    if not isinstance(files, dict) or not files:
        return f"{RECORD} lists no files"
    for name, expected in files.items():
        found = file_problem(folder / name, expected)
        if found:
            return found
    extra = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and p.name != RECORD and str(p.relative_to(folder)) not in files)
    return f"files that were not written with it: {', '.join(extra[:3])}" if extra else None


def clear_advice(path: Path) -> str:
    """The sentence that tells how to clear a damaged entry by hand."""
    command = f'rm -rf "{path}"' if os.name != "nt" else f'rmdir /s /q "{path}"'
    return f"Delete it ({command}) and run again: the kit builds it anew."

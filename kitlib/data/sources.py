"""Where an official archive comes from, in the README's order: the cache, KITLIB_DATA_DIR, Keras' cache, a download.

Only "no network" (KITLIB_OFFLINE, or a server that cannot be reached) leaves the archive unavailable, so that a
loader may serve its offline stand-in; any other failure (a checksum, a layout, the disk, a bug) propagates.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from kitlib import _fs, runtime
from kitlib.data import downloads
from kitlib.data.manifest import ArchiveSpec, LayoutError

COMPLETE = ".kitlib-complete"


class DatasetUnavailableError(FileNotFoundError):
    """No source could provide the dataset."""


@dataclasses.dataclass(frozen=True)
class Located:
    """An archive dataset's root folder and where it came from; root None: not available, and why (`source`)."""

    spec: ArchiveSpec
    root: Path | None
    source: str

    @property
    def note(self) -> str:
        """Why a stand-in serves instead ("" when the archive is here), for the stand-in's source line."""
        return "" if self.root is not None else f"{self.spec.title} is not available: {self.source}. "


def keras_datasets_dir() -> Path:
    """Where `keras.datasets` keeps its downloads: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def locate(spec: ArchiveSpec, cfg: runtime.Config) -> Located:
    """Find an archive dataset in the cache, KITLIB_DATA_DIR, Keras' cache or by download.

    One kernel at a time: a second one waits while the first downloads or extracts, then finds it in the cache.
    """
    with _fs.one_at_a_time(cfg.cache_dir / "datasets" / spec.name):
        root, source = _search(spec, cfg.cache_dir, cfg.data_dir, cfg.offline)
    return Located(spec, root, source)


def _extract_into_cache(archive: Path, spec: ArchiveSpec, cache: Path, verified: bool = False) -> Path:
    """Extract an archive into the cache and check the layout; the cache marks it complete, a wrong layout is removed."""
    target = cache / "datasets" / spec.name
    downloads.extract(archive, target, spec.max_extracted, verified)
    try:
        root = spec.check_layout(target / spec.folder, f"The archive {archive} extracted to")
    except LayoutError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    (target / COMPLETE).write_text(archive.name + "\n")
    return root


@dataclasses.dataclass(frozen=True)
class _Found:
    """The first place in the README's order that holds an archive dataset, found by looking only."""

    kind: str  # "extracted", "data_dir", "data_dir_archive", "keras", "cached_archive" or "download"
    path: Path  # the folder or archive there; for "download", where the download would go


def _first(spec: ArchiveSpec, cache: Path, data_dir: Path | None) -> _Found:
    """Where `locate` would take the dataset from, without writing, extracting or downloading anything."""
    extracted = cache / "datasets" / spec.name
    if (extracted / COMPLETE).exists() and not spec.missing(extracted / spec.folder):
        return _Found("extracted", extracted / spec.folder)
    if data_dir is not None:
        if not data_dir.is_dir():
            raise DatasetUnavailableError(
                f"KITLIB_DATA_DIR={data_dir} is not a folder. Point it at a folder holding "
                f"{spec.expected_layout()}"
            )
        if (data_dir / spec.folder).exists():
            return _Found("data_dir", spec.check_layout(data_dir / spec.folder, "The KITLIB_DATA_DIR folder"))
        if (data_dir / spec.filename).exists():
            return _Found("data_dir_archive", data_dir / spec.filename)
    for sub in spec.keras_cache:  # what keras.datasets.<name>.load_data() already downloaded (e.g. on Colab)
        if not spec.missing(keras_datasets_dir() / sub):
            return _Found("keras", keras_datasets_dir() / sub)
    cached_archive = cache / "downloads" / spec.filename
    if cached_archive.is_dir():
        raise DatasetUnavailableError(
            f"{cached_archive} is a folder where the kit keeps the downloaded archive {spec.filename}. "
            "Move it away or delete it, then run again."
        )
    return _Found("cached_archive" if cached_archive.exists() else "download", cached_archive)


def where(spec: ArchiveSpec, cfg: runtime.Config) -> str:
    """What would serve an archive dataset, found by looking only: nothing is downloaded, extracted or deleted.

    Raises what `locate` would raise for a misplaced folder or a wrong layout.
    """
    found = _first(spec, cfg.cache_dir, cfg.data_dir)
    if found.kind == "extracted":
        return f"cache ({found.path})"
    if found.kind == "data_dir":
        return f"KITLIB_DATA_DIR ({found.path})"
    if found.kind == "data_dir_archive":
        return f"KITLIB_DATA_DIR archive {found.path}, extracted into the cache on first use"
    if found.kind == "keras":
        return f"Keras' dataset cache ({found.path})"
    if found.kind == "cached_archive":
        return f"downloaded archive {found.path}, verified and extracted into the cache on first use"
    if cfg.offline:
        return f"not here and the network is off (KITLIB_OFFLINE=1); lessons use {spec.offline_stand_in}"
    return (f"not here; downloaded on first use from {spec.url} ({spec.size / 1e6:.0f} MB), or now with `fetch "
            f"{spec.name}`; without a network lessons use {spec.offline_stand_in}")


def _search(spec: ArchiveSpec, cache: Path, data_dir: Path | None, offline: bool) -> tuple[Path | None, str]:
    """`locate`'s search, in the order the README gives: (root, source), or (None, why not) without a network."""
    found = _first(spec, cache, data_dir)
    if found.kind == "extracted":
        return found.path, f"cache ({found.path})"
    if found.kind == "data_dir":
        return found.path, f"KITLIB_DATA_DIR ({found.path})"
    if found.kind == "data_dir_archive":
        # Classroom shares may hold rebuilt archives: accepted by layout, not by checksum.
        return _extract_into_cache(found.path, spec, cache), \
            f"KITLIB_DATA_DIR archive ({found.path}), extracted to the cache"
    if found.kind == "keras":
        return found.path, f"Keras' dataset cache ({found.path})"
    if found.kind == "cached_archive":
        if spec.verified(found.path):
            return _extract_into_cache(found.path, spec, cache, True), f"cache ({found.path})"
        found.path.unlink()  # corrupt cache entry: fetch it again below
    if offline:
        return None, "the network is off (KITLIB_OFFLINE=1)"
    try:
        archive = downloads.download(spec.url, found.path, spec.sha256, spec.size)
    except downloads.NoNetworkError as exc:  # only "no network" may bring a stand-in; every other error propagates
        return None, f"the server cannot be reached: {exc}"
    return _extract_into_cache(archive, spec, cache, True), f"official download ({spec.url})"

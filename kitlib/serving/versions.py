"""TF Serving's version layout, `<model_base_path>/<version>/saved_model.pb`: the store, the export, the lookup.

`VersionedModel` reads the layout: a request without a version gets the highest, a version number a specific
one. Like TF Serving (`--file_system_poll_wait_seconds`, 1 s by default), it looks at the base path again at most
once per `poll_seconds`, on the next request, so a new version folder is served without a restart; a version that
fails to load is left out (and retried) while the others keep serving. Unlike stock TF Serving, whose default
policy serves the latest version only, it keeps every version loaded (TF Serving does that with
`model_version_policy { all {} }` in a `--model_config_file`). `find_servable` is the one lookup both servers use.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from kitlib import _fs
from kitlib.serving.codec import BadRequest
from kitlib.serving.signatures import SignaturePredictor

Predictor = Callable[[dict], dict]
PLAIN_VERSION = 1  # the version a plain predictor (not a VersionedModel) reports and serves
VERSION_DIGITS = 18  # TF Serving's versions are int64: any 18-digit number fits
_VERSION = re.compile(rf"[0-9]{{1,{VERSION_DIGITS}}}")


class NotFound(LookupError):
    """No such model, or no such version of it (TF Serving's 404 and NOT_FOUND)."""


def parse_version(text: str) -> int:
    """A version number from a request path, or a BadRequest for anything but 1 to 18 ASCII digits."""
    if not _VERSION.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
        raise BadRequest(f"a version is a number of 1 to {VERSION_DIGITS} digits, got {shown!r}.")
    return int(text)


class VersionedModel:
    """The versions of one model under `<base_path>/<version>/saved_model.pb`, found and loaded as TF Serving does."""

    def __init__(self, base_path: str | Path, poll_seconds: float = 1.0,
                 load: Callable[[Path], Predictor] = SignaturePredictor) -> None:
        self.base_path = Path(base_path)
        if not self.base_path.is_dir():
            raise ValueError(f"{self.base_path} is not a folder; TF Serving's layout is "
                             "<model_base_path>/<version>/saved_model.pb, e.g. models/pets/1/saved_model.pb.")
        self.poll_seconds = poll_seconds
        self._load = load
        self._loaded: dict[int, Predictor] = {}
        self.errors: dict[int, str] = {}  # versions on disk that failed to load, and why
        self._polled = -float("inf")
        self._lock = threading.Lock()
        if not self.versions():
            raise ValueError(f"no version under {self.base_path} could be served: export each version into a numbered "
                             f"folder, e.g. {self.base_path / '1'}, holding saved_model.pb. Load errors: {self.errors}")

    def _on_disk(self) -> list[int]:
        """Version numbers whose folder holds a complete SavedModel (TF Serving ignores other folders)."""
        return sorted(int(d.name) for d in self.base_path.iterdir()
                      if _VERSION.fullmatch(d.name) and (d / "saved_model.pb").is_file())

    def versions(self) -> dict[int, Predictor]:
        """The loaded versions, after loading any new one found (at most one look per `poll_seconds`)."""
        with self._lock:
            if time.monotonic() - self._polled >= self.poll_seconds:
                on_disk = self._on_disk()
                for version in on_disk:
                    if version not in self._loaded:
                        try:
                            self._loaded[version] = self._load(self.base_path / str(version))
                            self.errors.pop(version, None)
                        except Exception as exc:  # noqa: BLE001 - a broken new version must not stop the others
                            self.errors[version] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                for version in set(self._loaded) - set(on_disk):  # a deleted folder is unloaded, as in TF Serving
                    del self._loaded[version]
                self._polled = time.monotonic()
            return dict(self._loaded)

    def __call__(self, request: dict) -> dict:
        """Predict with the highest version."""
        return find_servable({self.base_path.name: self}, self.base_path.name, None).predictor(request)


Model = Union[Predictor, VersionedModel]


@dataclasses.dataclass(frozen=True)
class Servable:
    """One version of one model, as a request found it, and every version that model serves (newest first)."""

    name: str
    version: int
    predictor: Predictor
    available: list[int]


def find_servable(models: Mapping[str, Model], name: str, version: int | None) -> Servable:
    """The asked version of a model (None: the highest), or NotFound in TF Serving's words."""
    entry = models.get(name)
    if entry is None:
        raise NotFound(f"Servable not found for request: Latest({name}); serving {sorted(models)}")
    versions = entry.versions() if isinstance(entry, VersionedModel) else {PLAIN_VERSION: entry}
    chosen = max(versions, default=None) if version is None else version
    if chosen not in versions:
        asked = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise NotFound(f"Servable not found for request: {asked}; the server has versions {sorted(versions)}")
    return Servable(name, chosen, versions[chosen], sorted(versions, reverse=True))


def export_version(export: Callable[[Path], Any], base_path: str | Path, version: int | None = None) -> Path:
    """Export into `<base_path>/<version>/` (default: one above the highest), atomically, as TF Serving expects it.

    `export` writes the SavedModel into the empty folder it is given (`tf.saved_model.save`, `model.export`,
    `ExportArchive.write_out` all do). It runs in a hidden staging folder that a polling server ignores, renamed
    to the version number only when complete; exports into one base path take turns, so two never pick one number.
    """
    base = Path(base_path)
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1
                                or len(str(version)) > VERSION_DIGITS):
        raise ValueError(f"a TF Serving version is a positive integer of at most {VERSION_DIGITS} digits, "
                         f"got {version!r}.")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fs.storage_error(exc, f"create {base}") from exc
    with _fs.one_at_a_time(base):
        if version is None:
            version = max((int(d.name) for d in base.iterdir() if _VERSION.fullmatch(d.name)), default=0) + 1
        target = base / str(version)
        if target.exists():
            raise FileExistsError(f"{target} exists: TF Serving never reloads a version in place; export a new one.")
        with _fs.staged_folder(target) as staging:
            export(staging)
            staging.chmod(0o755)  # mkdtemp's folder is private; a version is read by whoever serves it
    return target

"""The registered datasets: the manifest (data/datasets.json) read into one `ArchiveSpec` per official archive."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from kitlib.data import downloads


class LayoutError(ValueError):
    """A data folder does not have the layout of the official archive."""


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
    """An official dataset archive: where it lives, what it weighs, and how it is laid out."""

    name: str
    title: str
    url: str
    filename: str
    sha256: str | None  # None where no checksum is published: the size is checked instead
    size: int
    folder: str
    layout: tuple[str, ...]
    offline_stand_in: str
    max_extracted: int | None = None  # bytes the archive may expand to: the official expansion with room to spare
    kind: str = "class_folders"  # the layout lists class folders; "pickled_batches": it lists files (CIFAR)
    keras_cache: tuple[str, ...] = ()  # where under Keras' datasets folder keras.datasets keeps `folder`'s files

    def verified(self, path: Path) -> bool:
        """True when a file matches the pinned sha256 (or, where none is published, the pinned size)."""
        if self.sha256 is None:
            return path.stat().st_size == self.size
        return downloads.sha256_of(path) == self.sha256

    def expected_layout(self) -> str:
        """The folder tree a data folder must hold, for error messages."""
        rows = [f"  {self.folder}/{sub}" + ("" if self.kind == "pickled_batches" else "/...") for sub in self.layout]
        return f"{self.folder}/ (or the archive {self.filename}) containing:\n" + "\n".join(rows)

    def missing(self, root: Path) -> list[str]:
        """The entries of the layout that `root` lacks (files for pickled batches, else folders)."""
        present = Path.is_file if self.kind == "pickled_batches" else Path.is_dir
        return [sub for sub in self.layout if not present(root / sub)]

    def check_layout(self, root: Path, where: str) -> Path:
        """Return `root` if it has the official layout, else raise a LayoutError showing it."""
        missing = self.missing(root)
        if missing:
            raise LayoutError(
                f"{where} {root} does not have the layout of {self.filename} "
                f"(missing: {', '.join(missing)}). Expected:\n{self.expected_layout()}"
            )
        return root

    def class_folders(self) -> tuple[str, ...]:
        """The archive's class sub-folders in label order (sorted), read off its layout."""
        return tuple(sorted({sub.split("/")[1] for sub in self.layout}))

    def test_folder(self) -> str:
        """The split folder the test examples come from (the one that is not train/)."""
        return next(sub.split("/")[0] for sub in self.layout if not sub.startswith("train/"))


MANIFEST = Path(__file__).with_name("datasets.json")  # data/datasets.json in a checkout


def read_manifest(path: Path = MANIFEST) -> dict[str, ArchiveSpec]:
    """The registered datasets of the manifest (URL, size, sha256 where published, layout), by name."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(ArchiveSpec)}
    return {name: ArchiveSpec(name=name, **{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in entry.items() if k in fields})
            for name, entry in entries.items() if not name.startswith("_")}


ARCHIVES = read_manifest()
IMDB, CATS_AND_DOGS, CIFAR10 = ARCHIVES["imdb"], ARCHIVES["cats_and_dogs"], ARCHIVES["cifar10"]

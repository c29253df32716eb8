"""The learner's own labelled data: CSV / TSV / JSON-lines files and class folders, read in place and validated.

Every problem is reported with the file and line (or the folder) it was found in and what to do about
it; nothing is written anywhere. The loaders (`kitlib.load_text`, `kitlib.load_images`) turn what these
readers return into the same split objects the lessons use (capstone lesson 11 teaches them).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "comment", "tweet", "utterance",
                "message", "question")
LABEL_COLUMNS = ("label", "labels", "class", "category", "sentiment", "target", "intent", "topic", "y")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None, ".json": None}
TEXT_SUFFIXES = (".txt",)
SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"), "test": ("test",)}
MAX_CLASSES = {"smoke": 50, "cpu": 200, "gpu": 2000}
MIN_PER_CLASS = 3  # a stratified train / val / test split needs one example of each class in each


class DataFileError(ValueError):
    """The learner's data cannot be used as it is; the message names the file (and line) and the fix."""


@dataclasses.dataclass
class Labelled:
    """Examples (texts, or image paths) and their class names, per split found in the data ("all" when none)."""

    parts: dict[str, tuple[list[Any], list[str]]]
    where: str

    def class_names(self) -> tuple[str, ...]:
        """Sorted class names (numerically when every label is an integer)."""
        names = {label for _, labels in self.parts.values() for label in labels}
        if all(re.fullmatch(r"-?\d+", n) for n in names):
            return tuple(sorted(names, key=int))
        return tuple(sorted(names))

    def encoded(self, max_classes: int | None = None) -> tuple[tuple[str, ...], dict[str, tuple[np.ndarray, np.ndarray]]]:
        """(class names, {split: (examples, integer labels)}) after checking the classes can be learned."""
        names = self.class_names()
        if len(names) < 2:
            raise DataFileError(f"{self.where} has a single class ({', '.join(names) or 'none'}): a classifier "
                                "needs at least two. Check the label column or the class folders.")
        if max_classes is not None and len(names) > max_classes:
            raise DataFileError(
                f"{self.where} has {len(names):,} classes, more than this profile trains sensibly ({max_classes}). "
                "Check that the label column really holds classes (not ids or free text), merge rare classes, "
                "or use a larger profile (KITLIB_PROFILE=cpu or gpu).")
        for split, (_, labels) in self.parts.items():
            unknown = sorted(set(labels) - {l for s, (_, ls) in self.parts.items() if s in ("train", "all") for l in ls})
            if split not in ("train", "all") and unknown and ("train" in self.parts or "all" in self.parts):
                raise DataFileError(f"{self.where}: the {split} split has classes the training data lacks: "
                                    f"{', '.join(unknown[:5])}. Every class needs training examples.")
        index = {name: i for i, name in enumerate(names)}
        encoded = {split: (np.array(examples, dtype=object), np.array([index[l] for l in labels], dtype=np.int64))
                   for split, (examples, labels) in self.parts.items()}
        pool = encoded.get("all", encoded.get("train"))
        if pool is not None:
            counts = np.bincount(pool[1], minlength=len(names))
            rare = [f"{names[i]} ({counts[i]})" for i in np.flatnonzero(counts < MIN_PER_CLASS)]
            if rare and "all" in encoded:
                raise DataFileError(f"{self.where}: classes with fewer than {MIN_PER_CLASS} examples cannot be split "
                                    f"into train, validation and test: {', '.join(rare[:10])}. Add examples or drop them.")
        return names, encoded


def is_path(source: Any) -> bool:
    """True when `source` names a file or folder (the learner's data) rather than a registered dataset."""
    if isinstance(source, Path):
        return True
    text = str(source)
    return "/" in text or "\\" in text or Path(text).suffix.lower() in TABLE_SUFFIXES or Path(text).exists()


def _suffix(path: Path) -> str:
    """The table format of a file from its suffix, or a DataFileError listing the formats."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataFileError(f"{path}: unknown file type {suffix or '(no suffix)'!r}. Give a .csv, .tsv or .jsonl "
                            "file with a text column and a label column, or a folder with one sub-folder per class.")
    return suffix


def _read_text(path: Path, encoding: str, empty: str = "expected a header line and one labelled example per line") -> str:
    """The file's text, or a DataFileError naming the line with the undecodable byte and the encoding to pass."""
    if not path.exists():
        raise DataFileError(f"{path} does not exist. Check the path (relative paths start at the notebook's folder).")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder where a file was expected.")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFileError(
            f"{path}, line {line}: not valid {encoding} (byte 0x{raw[exc.start]:02x}). The file was saved in "
            "another encoding: pass encoding='latin-1' (or 'cp1252' for files from Excel on Windows), or "
            "re-save it as UTF-8.") from None
    if not text.strip():
        raise DataFileError(f"{path} is empty: {empty}.")
    return text.lstrip("\ufeff")


def _pick_column(path: Path, columns: Sequence[str], given: str | None, candidates: Sequence[str], role: str,
                 argument: str) -> str:
    """The column holding the text or the label: the one given, else the single known name present."""
    if given is not None:
        if given not in columns:
            raise DataFileError(f"{path} has no column {given!r} ({argument}). Its columns: {', '.join(columns)}.")
        return given
    found = [c for c in columns if c.strip().lower() in candidates]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataFileError(f"{path}: which column holds the {role}? None of its columns ({', '.join(columns)}) "
                            f"has a usual name ({', '.join(candidates[:6])}, ...). Pass {argument}='...'.")
    raise DataFileError(f"{path}: the {role} could be in any of the columns {', '.join(found)}. "
                        f"Pass {argument}='...' to choose one.")


def read_table(path: Path | str, text_column: str | None = None, label_column: str | None = None,
               encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """(texts, labels as strings) of a CSV, TSV or JSON-lines file, every row checked."""
    path = Path(path)
    suffix = _suffix(path)
    text = _read_text(path, encoding)
    rows: list[tuple[int, dict[str, Any]]] = []
    if TABLE_SUFFIXES[suffix] is None:
        columns: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path}, line {number}: not a JSON object ({exc.msg}). A JSON-lines file holds "
                                    'one object per line, e.g. {"text": "...", "label": "..."}.') from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}, line {number}: expected a JSON object, found {type(row).__name__}.")
            columns += [k for k in row if k not in columns]
            rows.append((number, row))
    else:
        reader = csv.reader(text.splitlines(), delimiter=TABLE_SUFFIXES[suffix])
        try:
            columns = next(reader)
        except StopIteration:
            columns = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise DataFileError(
                    f"{path}, line {reader.line_num}: {len(row)} fields where the header has {len(columns)}. "
                    "A text with the separator in it must be quoted (\"...\"); check that line.")
            rows.append((reader.line_num, dict(zip(columns, row))))
    if not rows:
        raise DataFileError(f"{path} has a header but no examples.")
    text_col = _pick_column(path, columns, text_column, TEXT_COLUMNS, "text", "text_column")
    label_col = _pick_column(path, columns, label_column, LABEL_COLUMNS, "label", "label_column")
    texts, labels = [], []
    for number, row in rows:
        value, label = row.get(text_col), row.get(label_col)
        if value is None or not str(value).strip():
            raise DataFileError(f"{path}, line {number}: the text ({text_col!r}) is empty. Remove the row or fill it in.")
        if label is None or isinstance(label, (list, dict)) or not str(label).strip():
            raise DataFileError(f"{path}, line {number}: the label ({label_col!r}) is empty or not a single value.")
        texts.append(" ".join(str(value).split()))
        labels.append(str(label).strip() if not isinstance(label, float) or not label.is_integer() else str(int(label)))
    return texts, labels


def _split_folders(root: Path) -> dict[str, Path]:
    """The split sub-folders (train / val / test, under their usual names) of a data folder, if any."""
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


def _class_files(folder: Path, suffixes: Sequence[str], what: str) -> tuple[list[Path], list[str]]:
    """Files of the given suffixes under each class sub-folder of `folder` (sorted), with their class names."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataFileError(f"{folder} has no class sub-folders. Expected one sub-folder per class, each holding "
                            f"{what} files, e.g. {folder}/cats/..., {folder}/dogs/....")
    paths: list[Path] = []
    labels: list[str] = []
    for sub in classes:
        found = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not found:
            raise DataFileError(f"{sub} holds no {what} files ({', '.join(suffixes)}): remove the folder or fill it.")
        paths += found
        labels += [sub.name] * len(found)
    return paths, labels


def read_folder(root: Path | str, suffixes: Sequence[str], what: str) -> Labelled:
    """Class folders (optionally under train/, val/ or validation/, test/) as paths and class names per split."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"{root} is not a folder" + (" (it does not exist)." if not root.exists() else "."))
    splits = _split_folders(root)
    if splits:
        parts = {split: _class_files(folder, suffixes, what) for split, folder in splits.items()}
        if "train" not in parts:
            raise DataFileError(f"{root} has {', '.join(p.name for p in splits.values())}/ but no train/ folder.")
    else:
        parts = {"all": _class_files(root, suffixes, what)}
    return Labelled({s: ([str(p) for p in paths], labels) for s, (paths, labels) in parts.items()}, str(root))


def read_text_source(source: Path | str, text_column: str | None = None, label_column: str | None = None,
                     encoding: str = "utf-8", test_file: Path | str | None = None,
                     val_file: Path | str | None = None) -> Labelled:
    """Labelled texts from a table file (plus optional test and validation files) or from class folders of .txt files."""
    path = Path(source)
    if path.is_dir():
        folders = read_folder(path, TEXT_SUFFIXES, "text (.txt)")
        parts = {}
        for split, (files, labels) in folders.parts.items():
            texts = []
            for file in files:
                text = _read_text(Path(file), encoding, "each .txt file holds one example's text")
                text = " ".join(text.replace("<br />", " ").split())
                texts.append(text)
            parts[split] = (texts, labels)
        return Labelled(parts, str(path))
    parts = {("train" if test_file or val_file else "all"): read_table(path, text_column, label_column, encoding)}
    for split, file in (("test", test_file), ("val", val_file)):
        if file is not None:
            parts[split] = read_table(file, text_column, label_column, encoding)
    return Labelled(parts, str(path))

"""The learner's own labelled data: CSV / TSV / JSON-lines files and class folders, read in place and validated.

Every problem is reported with the file and line (or the folder) it was found in and what to do about
it; nothing is written anywhere. The loaders (`kitlib.load_text`, `kitlib.load_images`) turn what these
readers return into the same split objects the lessons use (capstone lesson 11 teaches them).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence, TextIO

import numpy as np

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "comment", "tweet", "utterance",
                "message", "question")
LABEL_COLUMNS = ("label", "labels", "class", "category", "sentiment", "target", "intent", "topic", "y")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None, ".json": None}
TEXT_SUFFIXES = (".txt",)
SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"), "test": ("test",)}
MAX_CLASSES = {"smoke": 50, "cpu": 200, "gpu": 2000}
MIN_PER_CLASS = 3  # a stratified train / val / test split needs one example of each class in each
SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}  # tried in this order after the suffix's
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # UTF-32 LE first: it starts like UTF-16 LE
NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)
SAMPLE = 1 << 16  # characters the separator is sniffed from
DEFAULT_MAX_MB = 1024  # the largest data file read, in megabytes (KITLIB_MAX_DATA_MB raises it)


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
        pool = "all" if "all" in encoded else "train"
        carved = ["validation" if s == "val" else s for s in ("val", "test") if pool == "all" or s not in encoded]
        counts = np.bincount(encoded[pool][1], minlength=len(names))
        rare = [f"{names[i]} ({counts[i]})" for i in np.flatnonzero(counts < 1 + len(carved))]
        if rare:
            raise DataFileError(
                f"{self.where}: classes with fewer than {1 + len(carved)} examples cannot be split into train and "
                f"{' and '.join(carved)} (each split needs one example of every class): {', '.join(rare[:10])}. "
                "Add examples or drop them.")
        return names, encoded


def check_every_split(classes: Sequence[str], splits: dict[str, tuple[Any, np.ndarray]], where: str) -> None:
    """Refuse splits where a class has no example: it could be neither learned, nor tuned on, nor tested."""
    for split, (_, labels) in splits.items():
        counts = np.bincount(labels, minlength=len(classes))
        missing = [repr(classes[i]) for i in np.flatnonzero(counts == 0)]
        if missing:
            raise DataFileError(
                f"{where}: the {split} split has no example of class {', '.join(missing[:10])}. Every class needs at "
                f"least one example in each of train, val and test: {MIN_PER_CLASS} in all when the kit splits the "
                "data, one in each given split folder or file (and one more for each split carved from train). "
                "Add examples of it (or readable files), or drop the class.")


def is_path(source: Any) -> bool:
    """True when `source` names a file or folder (the learner's data) rather than a registered dataset."""
    if isinstance(source, Path):
        return True
    text = str(source)
    return "/" in text or "\\" in text or Path(text).suffix.lower() in TABLE_SUFFIXES or Path(text).exists()


def max_bytes() -> int:
    """The largest file the kit reads as the learner's data: KITLIB_MAX_DATA_MB megabytes (default 1024)."""
    value = os.environ.get("KITLIB_MAX_DATA_MB", "").strip()
    try:
        megabytes = float(value) if value else DEFAULT_MAX_MB
    except ValueError:
        raise DataFileError(f"KITLIB_MAX_DATA_MB={value!r} is not a number of megabytes (e.g. 4096).") from None
    return int(megabytes * 1024 * 1024)


def open_regular(path: Path, limit: int | None = None) -> BinaryIO:
    """`path` opened for binary reading once it is known to be a regular file of at most `limit` bytes.

    The file is opened without blocking and checked on the open descriptor, so a FIFO (which would wait for a
    writer forever), a device such as /dev/zero (endless) or a link to one is refused before a byte is read.
    """
    limit = max_bytes() if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise DataFileError(f"{path} does not exist. Check the path (relative paths start at the notebook's folder)."
                            ) from None
    except IsADirectoryError:
        raise DataFileError(f"{path} is a folder where a file was expected.") from None
    except OSError as exc:
        raise DataFileError(f"{path} cannot be opened ({exc.strerror or exc}). Check its permissions.") from None
    info = os.fstat(fd)
    kind = next((name for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                                         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                                         (stat.S_ISSOCK, "a socket")) if test(info.st_mode)), None)
    if kind is not None or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DataFileError(f"{path} is {kind or 'not a regular file'}" + (f" (it links to {path.resolve()})"
                            if path.is_symlink() else "") + ": the kit reads only saved files, since reading this "
                            "could wait or run forever. Save the data to a file and pass that.")
    if info.st_size > limit:
        os.close(fd)
        raise DataFileError(f"{path} is {info.st_size / 2**20:,.1f} MB, over the {limit / 2**20:,.4g} MB the kit "
                            "reads as one data file. Use a sample of it, or raise the limit: set the environment "
                            f"variable KITLIB_MAX_DATA_MB (e.g. {2 ** int(info.st_size / 2**20).bit_length()}) "
                            "before loading.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _suffix(path: Path) -> str:
    """The table format of a file from its suffix, or a DataFileError listing the formats."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataFileError(f"{path}: unknown file type {suffix or '(no suffix)'!r}. Give a .csv, .tsv or .jsonl "
                            "file with a text column and a label column, or a folder with one sub-folder per class.")
    return suffix


def _encoding(path: Path, head: bytes, encoding: str) -> str:
    """The encoding to read with: the one a byte-order mark names, else `encoding` (refusing UTF-16 read as bytes)."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    if not wide and b"\x00" in head:
        order = "le" if head.find(b"\x00") % 2 else "be"
        raise DataFileError(
            f"{path} holds NUL bytes: it looks like UTF-16 text without a byte-order mark (Excel's \"Unicode Text\" "
            f"saves UTF-16), not {encoding}. Pass encoding='utf-16-{order}', or re-save it as \"CSV UTF-8\".")
    return encoding


def _opened_text(path: Path, encoding: str, newline: str) -> tuple[TextIO, str]:
    """(a text stream over the checked file, the encoding used), never holding the whole file in memory."""
    handle = open_regular(path)
    try:
        head = handle.read(4096)
        handle.seek(0)
        used = _encoding(path, head, encoding)
        return io.TextIOWrapper(handle, encoding=used, newline=newline), used
    except BaseException:
        handle.close()
        raise


def _undecodable(path: Path, encoding: str) -> DataFileError:
    """The DataFileError for a file that is not valid `encoding`: the line with the first bad byte, and what to pass."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line, byte = 1, None
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                start = max(exc.start - len(exc.object) + len(block), 0)
                line += block[:start].count(b"\n")
                byte = block[start] if start < len(block) else exc.object[exc.start]
                break
            line += block.count(b"\n")
    shown = f" (byte 0x{byte:02x})" if byte is not None else ""
    return DataFileError(
        f"{path}, line {line}: not valid {encoding}{shown}. The file was saved in another encoding: pass "
        "encoding='cp1252' (files from Excel on Windows) or encoding='latin-1', or re-save it as UTF-8.")


def read_text_file(path: Path, encoding: str, empty: str) -> str:
    """A whole (checked) text file, or a DataFileError naming the line with the undecodable byte and the fix."""
    handle, used = _opened_text(path, encoding, "")
    try:
        with handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise _undecodable(path, used) from None
    if not text.strip():
        raise DataFileError(f"{path} is empty: {empty}.")
    return text


def _pick_column(path: Path, columns: Sequence[str], given: str | None, candidates: Sequence[str], role: str,
                 argument: str, how: str) -> str:
    """The column holding the text or the label: the one given, else the single known name present."""
    if given is not None:
        if given not in columns:
            raise DataFileError(f"{path} has no column {given!r} ({argument}). Its columns: {', '.join(columns)}"
                                f"{how}.")
        return given
    found = [c for c in columns if c.strip().lower() in candidates]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataFileError(f"{path}: which column holds the {role}? None of its columns ({', '.join(columns)}) "
                            f"has a usual name ({', '.join(candidates[:6])}, ...){how}. Pass {argument}='...'.")
    raise DataFileError(f"{path}: the {role} could be in any of the columns {', '.join(found)}. "
                        f"Pass {argument}='...' to choose one.")


def _label(path: Path, number: int, column: str, value: Any) -> str:
    """A label as its class name, checked: a single, non-empty value, and no NaN or infinite number."""
    where = f"{path}, line {number}: the label ({column!r})"
    if value is None or isinstance(value, (list, dict)) or not str(value).strip():
        raise DataFileError(f"{where} is empty or not a single value. Fill it in or remove the row.")
    if isinstance(value, float):
        number_value = value
    elif isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        number_value = float(value)
    else:
        return str(value).strip()
    if not math.isfinite(number_value):
        raise DataFileError(f"{where} is {str(value).strip()!r}, a missing or infinite number (a number too large "
                            "for a float reads as infinity), not a class. Fill in the class or remove the row.")
    if isinstance(value, float) or re.fullmatch(r"[+-]?\d+\.0*", value.strip()):
        return str(int(number_value)) if number_value.is_integer() else str(number_value)
    return value.strip()


def _sniffed(sample: str, default: str, complete: bool) -> str:
    """The separator: the suffix's when it gives the sampled records a steady number of fields, else the first of
    the tried ones (comma, tab, semicolon, pipe) that does; the suffix's when none does."""
    for separator in dict.fromkeys([default, *SEPARATORS]):
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=separator, strict=True)
        records: list[list[str]] = []
        try:
            records.extend(reader)
        except csv.Error:
            if complete:
                continue
        if not complete and records:
            records.pop()  # the sample may end inside this record
        records = [r for r in records if any(cell.strip() for cell in r)]
        if records and len(records[0]) > 1 and all(len(r) == len(records[0]) for r in records):
            return separator
    return default


def _delimited(path: Path, encoding: str, separator: str, quoting: int) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, fields) of every record, read by the csv module from a stream of the file."""
    handle, _ = _opened_text(path, encoding, "")
    with handle:
        reader = csv.reader(handle, delimiter=separator, quoting=quoting, strict=True)
        start = 1
        try:
            for record in reader:
                yield start, record
                start = reader.line_num + 1
        except csv.Error as exc:
            raise DataFileError(
                f"{path}, line {start}: {exc} (read with {SEPARATORS[separator]} as the separator). A field that "
                "starts with a quote (\") must end with one, followed by the separator or the line's end; a quote "
                "inside a quoted field is written twice (\"\").") from None


def _jsonl(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line, lines split on '\\n' only (U+2028 and the like stay in text)."""
    handle, _ = _opened_text(path, encoding, "\n")
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path}, line {number}: not a JSON object ({exc.msg}). A JSON-lines file holds "
                                    'one object per line, e.g. {"text": "...", "label": "..."}.') from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}, line {number}: expected a JSON object, found {type(row).__name__}.")
            yield number, row


@contextlib.contextmanager
def _field_limit(path: Path) -> Iterator[None]:
    """Let the csv module read fields as long as the file itself (its default stops at 131,072 characters)."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, min(path.stat().st_size + 1, 2**31 - 1)))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _table_rows(path: Path, separator: str | None, encoding: str
                ) -> tuple[list[str], Iterator[tuple[int, Any]], str]:
    """(columns, rows as (line, record), how it was read) of a JSON-lines or delimited file; records are
    dicts for JSON lines and field lists otherwise. Tab files whose quotes do not pair up are read unquoted."""
    if separator is None:
        rows: Iterator[tuple[int, Any]] = _jsonl(path, encoding)
        first = next(rows, None)
        if first is None:
            raise DataFileError(f"{path} is empty: expected one JSON object per line.")
        return list(first[1]), itertools.chain([first], rows), ""
    handle, used = _opened_text(path, encoding, "")
    with handle:
        sample = handle.read(SAMPLE)
        complete = not handle.read(1)
    separator = _sniffed(sample, separator, complete)
    how = f" (read with {SEPARATORS[separator]} as the separator)"
    quotings = [csv.QUOTE_MINIMAL, csv.QUOTE_NONE] if separator == "\t" else [csv.QUOTE_MINIMAL]
    for attempt, quoting in enumerate(quotings, start=1):
        rows = _delimited(path, used, separator, quoting)
        header = next((r for r in rows if any(cell.strip() for cell in r[1])), None)
        if header is None:
            raise DataFileError(f"{path} is empty: expected a header line and one labelled example per line.")
        if attempt < len(quotings):  # check the quoted reading first; if it fails, the unquoted one is tried
            try:
                for number, record in _delimited(path, used, separator, quoting):
                    if number > header[0] and any(c.strip() for c in record) and len(record) != len(header[1]):
                        raise DataFileError(f"{path}, line {number}: {len(record)} fields")
            except DataFileError:
                continue
        return header[1], rows, how
    raise AssertionError("unreachable: the last quoting is always returned")


def read_table(path: Path | str, text_column: str | None = None, label_column: str | None = None,
               encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """(texts exactly as written, labels as class names) of a CSV, TSV or JSON-lines file, streamed, every row checked.

    Records are read by the csv module (quoted separators and line breaks kept), JSON lines split on '\\n' only;
    the separator is sniffed and named in errors; a byte-order mark sets the encoding (UTF-8 or UTF-16).
    """
    path = Path(path)
    separator = TABLE_SUFFIXES[_suffix(path)]
    texts: list[str] = []
    labels: list[str] = []
    names: dict[str, str] = {}  # one string per class, shared by its rows
    try:
        with _field_limit(path) if path.is_file() else contextlib.nullcontext():
            columns, rows, how = _table_rows(path, separator, encoding)
            text_col = label_col = None
            for number, record in rows:
                if separator is not None:
                    if not any(cell.strip() for cell in record):
                        continue  # a blank line
                    if len(record) != len(columns):
                        raise DataFileError(
                            f"{path}, line {number}: {len(record)} fields where the header has {len(columns)}{how}. "
                            "A text with the separator in it must be quoted (\"...\"); check that line.")
                    record = dict(zip(columns, record))
                if text_col is None:
                    text_col = _pick_column(path, columns, text_column, TEXT_COLUMNS, "text", "text_column", how)
                    label_col = _pick_column(path, columns, label_column, LABEL_COLUMNS, "label", "label_column", how)
                value = record.get(text_col)
                if not isinstance(value, str) or not value.strip():
                    what = "is empty" if value is None or isinstance(value, str) else f"is a {type(value).__name__}"
                    raise DataFileError(f"{path}, line {number}: the text ({text_col!r}) {what}. Remove the row or "
                                        "fill it in with the text.")
                label = _label(path, number, label_col, record.get(label_col))
                texts.append(value)
                labels.append(names.setdefault(label, label))
    except UnicodeDecodeError as exc:
        raise _undecodable(path, exc.encoding) from None
    if not texts:
        raise DataFileError(f"{path} has a header but no examples.")
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
        found = sorted(p for p in sub.rglob("*") if p.suffix.lower() in suffixes and not p.is_dir())
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
                text = read_text_file(Path(file), encoding, "each .txt file holds one example's text")
                text = " ".join(text.replace("<br />", " ").split())
                texts.append(text)
            parts[split] = (texts, labels)
        return Labelled(parts, str(path))
    parts = {("train" if test_file or val_file else "all"): read_table(path, text_column, label_column, encoding)}
    for split, file in (("test", test_file), ("val", val_file)):
        if file is not None:
            parts[split] = read_table(file, text_column, label_column, encoding)
    return Labelled(parts, str(path))

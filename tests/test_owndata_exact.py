"""The learner's own data read exactly: every record as written, every bad file refused by name, every class in every split.

Each test holds a case an adversarial probe found read wrongly, or refused with an unhelpful error.
"""

from __future__ import annotations

import io
import json
import os
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import kitlib
from kitlib.data import datasets, images, owndata
from kitlib.data.owndata import DataFileError


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


# --- records as written ---------------------------------------------------------------------------


def test_quoted_line_breaks_u2028_and_form_feeds_stay_in_the_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'text,label\n"great\nfilm",pos\n"one\u2028two",neg\n"page\x0cbreak",pos\n'
                                     '"crlf\r\nkept",neg\n')
    texts, labels = owndata.read_table(path)
    assert texts == ["great\nfilm", "one\u2028two", "page\x0cbreak", "crlf\r\nkept"]
    assert labels == ["pos", "neg", "pos", "neg"]


def test_jsonl_is_split_on_newlines_only(tmp_path: Path) -> None:
    rows = [{"text": "line\u2028separator", "label": "a"}, {"text": "next\x85line \x1c\x1d", "label": "b"}]
    path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    assert owndata.read_table(path) == (["line\u2028separator", "next\x85line \x1c\x1d"], ["a", "b"])


def test_byte_0x85_reads_with_the_suggested_latin1(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", b"text,label\nfine,1\nwait\x85 what,0\n")
    with pytest.raises(DataFileError, match=r"a\.csv, line 3: not valid utf-8 \(byte 0x85\).*encoding='latin-1'"):
        owndata.read_table(path)
    assert owndata.read_table(path, encoding="latin-1") == (["fine", "wait\x85 what"], ["1", "0"])


def test_a_tsv_text_starting_with_an_unbalanced_quote_keeps_every_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", 'text\tlabel\n"so good\t1\nbad\t0\nfine\t1\nmeh\t0\nok\t1\n')
    texts, labels = owndata.read_table(path)
    assert texts == ['"so good', "bad", "fine", "meh", "ok"] and labels == ["1", "0", "1", "0", "1"]
    quoted = write(tmp_path / "b.tsv", 'text\tlabel\n"tab\tand\nbreak"\t1\nplain\t0\n')  # pandas-style quoting
    assert owndata.read_table(quoted) == (["tab\tand\nbreak", "plain"], ["1", "0"])


def test_an_unclosed_quote_in_a_csv_names_the_line_and_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'text,label\nfine,1\n"he said "hi" to me,0\n')
    with pytest.raises(DataFileError, match=r"line 3: .*comma as the separator.*written twice"):
        owndata.read_table(path)


# --- separators, encodings, limits ----------------------------------------------------------------


@pytest.mark.parametrize("separator, name", [(";", "semicolon"), ("|", "pipe"), ("\t", "tab")])
def test_separators_are_sniffed(tmp_path: Path, separator: str, name: str) -> None:
    rows = ["text", "label"], ["good, very good", "pos"], ["bad", "neg"]
    path = write(tmp_path / "a.csv", "\n".join(separator.join(r) for r in rows) + "\n")
    assert owndata.read_table(path) == (["good, very good", "bad"], ["pos", "neg"])
    odd = write(tmp_path / "b.csv", "\n".join(separator.join(r) for r in [["words", "stars"], ["x", "1"]]) + "\n")
    with pytest.raises(DataFileError, match=f"columns \\(words, stars\\).*read with {name} as the separator"):
        owndata.read_table(odd)


def test_byte_order_marks_set_the_encoding(tmp_path: Path) -> None:
    text = "text\tlabel\nna\u00efve caf\u00e9\t1\nplain\t0\n"
    for encoding in ("utf-8-sig", "utf-16", "utf-32"):  # Excel's "Unicode Text" is UTF-16 with a BOM
        path = write(tmp_path / f"{encoding}.tsv", text, encoding)
        assert owndata.read_table(path) == (["na\u00efve caf\u00e9", "plain"], ["1", "0"]), encoding


def test_utf16_without_a_bom_is_advised_correctly(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "text\tlabel\nhello\t1\nbye\t0\n", "utf-16-le")
    with pytest.raises(DataFileError, match="looks like UTF-16.*encoding='utf-16-le'") as caught:
        owndata.read_table(path)
    assert "latin-1" not in str(caught.value)
    assert owndata.read_table(path, encoding="utf-16-le") == (["hello", "bye"], ["1", "0"])  # the advice works


def test_a_field_longer_than_the_csv_default_limit_is_read(tmp_path: Path) -> None:
    long = "word " * 40_000  # 200,000 characters, over csv's 131,072
    path = write(tmp_path / "a.csv", f'text,label\n"{long}",1\nshort,0\n')
    assert owndata.read_table(path)[0] == [long, "short"]
    import csv

    assert csv.field_size_limit() == 131_072, "the process-wide limit is restored"


@pytest.mark.parametrize("label", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_jsonl_labels_are_refused(tmp_path: Path, label: str) -> None:
    path = write(tmp_path / "a.jsonl", f'{{"text": "fine", "label": 1}}\n{{"text": "odd", "label": {label}}}\n')
    with pytest.raises(DataFileError, match=r"line 2: the label \('label'\) is .*infinite number"):
        owndata.read_table(path)


def test_non_finite_csv_labels_are_refused_and_integral_ones_merge(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"line 3: the label \('label'\) is 'nan'"):
        owndata.read_table(write(tmp_path / "a.csv", "text,label\nfine,1\nodd,nan\n"))
    assert owndata.read_table(write(tmp_path / "b.csv", "text,label\na,1\nb,1.0\nc,2.50\n"))[1] == ["1", "1", "2.50"]


def _finishes(call, seconds: float = 20) -> BaseException | None:
    """Run `call` in a thread; the exception it raised (None if none), failing the test if it does not finish."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still reading after {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_and_devices_are_refused_before_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    caught = _finishes(lambda: owndata.read_table(tmp_path / "pipe.csv"))
    assert isinstance(caught, DataFileError) and "is a FIFO" in str(caught)
    os.symlink("/dev/zero", tmp_path / "zero.jsonl")
    caught = _finishes(lambda: owndata.read_table(tmp_path / "zero.jsonl"))
    assert isinstance(caught, DataFileError) and "character device (it links to /dev/zero)" in str(caught)
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "photos" / cls / f"{i}.png")
    os.mkfifo(tmp_path / "photos" / "b" / "pipe.jpg")
    caught = _finishes(lambda: kitlib.load_images(tmp_path / "photos", image_size=8, verbose=False))
    assert isinstance(caught, DataFileError) and "pipe.jpg is a FIFO" in str(caught)


def test_files_over_the_stated_size_are_refused_with_the_way_to_raise_it(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "a.csv", "text,label\n" + "some text,1\n" * 20_000)  # 240 KB
    monkeypatch.setenv("KITLIB_MAX_DATA_MB", "0.1")
    with pytest.raises(DataFileError, match=r"a\.csv is 0\.2 MB, over the 0\.1 MB .*KITLIB_MAX_DATA_MB"):
        owndata.read_table(path)
    monkeypatch.setenv("KITLIB_MAX_DATA_MB", "1")
    assert len(owndata.read_table(path)[0]) == 20_000


def test_reading_is_streamed_memory_stays_near_what_is_kept(tmp_path: Path) -> None:
    rows = "".join(f"review number {i} of the stream,{'pos' if i % 2 else 'neg'}\n" for i in range(100_000))
    path = write(tmp_path / "a.csv", "text,label\n" + rows)
    size = path.stat().st_size
    tracemalloc.start()
    texts, labels = owndata.read_table(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(texts) == 100_000 and len(set(map(id, labels))) == 2, "one string per class"
    # what is kept: 100,000 strings of ~30 characters (~80 bytes each) and two lists of pointers
    assert peak < 12 * size, f"peak {peak / 2**20:.1f} MB for a {size / 2**20:.1f} MB file"


# --- every class in every split -------------------------------------------------------------------


def test_a_rare_class_is_in_every_split(kit_env: Path) -> None:
    rows = ["text,label"] + [f"common {i},big" for i in range(30_000)] + [f"rare {i},small" for i in range(3)]
    data = kitlib.load_text(write(kit_env / "skewed.csv", "\n".join(rows) + "\n"), verbose=False)
    for split in ("train", "val", "test"):
        assert np.bincount(data.labels(split), minlength=2)[1] == 1, split


def test_three_examples_per_class_give_non_empty_validation_and_test(kit_env: Path) -> None:
    rows = ["text,label"] + [f"{word} {i},{word}" for word in ("cat", "dog") for i in range(3)]
    data = kitlib.load_text(write(kit_env / "tiny.csv", "\n".join(rows) + "\n"), verbose=False)
    assert [np.bincount(data.labels(s), minlength=2).tolist() for s in ("train", "val", "test")] == [[1, 1]] * 3
    cfg = kitlib.setup(verbose=False)
    from kitlib.models import recipe

    with pytest.raises(ValueError, match="at least 10 training examples \\(got 2\\)"):
        recipe.run(data, cfg, verbose=False)  # refused before any model is built or trained


def test_a_given_split_without_a_class_names_it(kit_env: Path) -> None:
    rows = ["text,label"] + [f"{word} {i},{word}" for word in ("cat", "dog", "eel") for i in range(10)]
    train = write(kit_env / "train.csv", "\n".join(rows) + "\n")
    test = write(kit_env / "test.csv", "text,label\na cat,cat\na dog,dog\n")
    with pytest.raises(DataFileError, match="the test split has no example of class 'eel'.*at least one"):
        kitlib.load_text(train, test_file=test, verbose=False)


def test_carving_from_train_needs_an_example_per_carved_split(kit_env: Path) -> None:
    rows = ["text,label"] + [f"{word} {i},{word}" for word in ("cat", "dog") for i in range(10)] + ["an eel,eel"]
    test = write(kit_env / "test.csv", "text,label\na cat,cat\na dog,dog\nan eel,eel\n")
    with pytest.raises(DataFileError, match="fewer than 2 examples cannot be split into train and validation.*eel"):
        kitlib.load_text(write(kit_env / "train.csv", "\n".join(rows) + "\n"), test_file=test, verbose=False)


# --- one image decoder for training and serving ---------------------------------------------------


def _quadrants(height: int = 24, width: int = 40) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2:] = (0, 255, 0)
    image[height // 2:, : width // 2] = (0, 0, 255)
    image[height // 2:, width // 2:] = (255, 255, 0)
    return image


def _served(encoded: bytes, size: int) -> np.ndarray:
    """What the exported serving signature sees: recipe.decode_images traced in a graph, as the export traces it."""
    import tensorflow as tf

    from kitlib.models import recipe

    traced = tf.function(lambda batch: recipe.decode_images(batch, size),
                         input_signature=[tf.TensorSpec([None], tf.string)])
    return images.to_uint8(traced(tf.constant([encoded]))[0])


def test_a_16_bit_png_is_the_same_pixels_in_training_and_serving(tmp_path: Path) -> None:
    from PIL import Image

    grey = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 60).astype(np.uint16)  # up to 61,380 of 65,535
    path = tmp_path / "photos" / "a" / "deep.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I;16")
    trained = datasets._read_image(path, 32)
    expected = np.round(grey / 65535 * 255)
    assert np.abs(trained[..., 0].astype(float) - expected).max() <= 1, "scaled by 65535, not clipped to white"
    assert abs(trained.mean() - expected.mean()) < 0.5 and trained.mean() < 240
    assert (trained == _served(path.read_bytes(), 32)).all()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_in_training_and_serving(tmp_path: Path, orientation: int, fmt: str) -> None:
    import tensorflow as tf
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(_quadrants()).save(path, fmt, exif=exif.tobytes(), **({"quality": 100} if fmt == "JPEG" else {}))
    with Image.open(path) as stored:
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), np.float32) / 255
    reference = tf.image.resize(upright, (16, 16)).numpy()
    trained = datasets._read_image(path, 16)
    assert np.abs(trained / 255 - reference).max() < 0.1, "upright, as PIL's exif_transpose turns it"
    assert (trained == _served(path.read_bytes(), 16)).all()


def test_hostile_exif_bytes_decode_as_stored(tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_quadrants()).save(buffer, "JPEG", quality=100)
    plain = buffer.getvalue()
    # an APP1 Exif segment whose IFD offset points far past the end, and a count of 65535 entries
    tiff = b"MM\x00\x2a\xff\xff\xff\xf0" + b"\xff\xff" + b"\x00" * 12
    segment = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    hostile = plain[:2] + segment + plain[2:]
    assert (_served(hostile, 16) == _served(plain, 16)).all()

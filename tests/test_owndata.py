"""The learner's own data: tables and class folders read in place, every bad input named with its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kitlib
from kitlib.data import owndata
from kitlib.data.owndata import DataFileError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_usual_column_names_and_quoted_separators(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", 'id,review,sentiment\n1,"good, really good",pos\n2,bad,neg\n3,  so   so ,neu\n')
    texts, labels = owndata.read_table(path)
    assert texts == ["good, really good", "bad", "  so   so "]  # exactly as written
    assert labels == ["pos", "neg", "neu"]


def test_tsv_and_jsonl_with_named_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path / "a.tsv", "words\tstars\nnice\t5\nawful\t1\n")
    assert owndata.read_table(tsv, text_column="words", label_column="stars") == (["nice", "awful"], ["5", "1"])
    rows = [{"text": "yes", "label": 1}, {"text": "no", "label": 0.0}, {"text": "maybe", "label": "2"}]
    jsonl = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert owndata.read_table(jsonl) == (["yes", "no", "maybe"], ["1", "0", "2"])


def test_integer_labels_sort_numerically_and_strings_alphabetically() -> None:
    data = owndata.Labelled({"all": (["a"] * 4 + ["b"] * 4 + ["c"] * 4, ["10"] * 4 + ["2"] * 4 + ["1"] * 4)}, "x")
    names, encoded = data.encoded()
    assert names == ("1", "2", "10")
    assert encoded["all"][1].tolist() == [2] * 4 + [1] * 4 + [0] * 4
    data = owndata.Labelled({"all": (["a"] * 6, ["pos", "neg"] * 3)}, "x")
    assert data.encoded()[0] == ("neg", "pos")


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "does not exist"),
    ("empty.csv", "", "is empty"),
    ("blank.csv", "text,label\n\n", "no examples"),
    ("notes.xlsx", "text,label\n", "unknown file type '.xlsx'"),
    ("cols.csv", "title,body_text,stars\na,b,1\n", "which column holds the text"),
    ("ambiguous.csv", "text,review,label\na,b,1\n", "any of the columns text, review"),
    ("ragged.csv", "text,label\nfine,1\ntoo,many,fields\n", "line 3: 3 fields where the header has 2"),
    ("emptytext.csv", "text,label\nfine,1\n  ,0\n", "line 3: the text ('text') is empty"),
    ("emptylabel.tsv", "text\tlabel\nfine\t1\nalso fine\t\n", "line 3: the label ('label') is empty"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n', "line 2: not a JSON object"),
    ("list.jsonl", '["a", 1]\n', "line 1: expected a JSON object"),
])
def test_bad_tables_name_the_file_line_and_fix(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name if content is None else write(tmp_path / name, content)
    with pytest.raises(DataFileError, match=str(path).replace(".", r"\.")) as caught:
        owndata.read_table(path)
    assert message in str(caught.value)


def test_unknown_column_names_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,label\na,1\n")
    with pytest.raises(DataFileError, match="no column 'body' \\(text_column\\). Its columns: text, label"):
        owndata.read_table(path, text_column="body")


def test_a_file_that_is_not_utf8_says_which_line_and_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.csv", "text,label\nfine,1\ncaf\u00e9 cr\u00e8me,0\n", encoding="latin-1")
    with pytest.raises(DataFileError, match=r"line 3: not valid utf-8 \(byte 0xe9\).*encoding='latin-1'"):
        owndata.read_table(path)
    assert owndata.read_table(path, encoding="latin-1")[0][1] == "caf\u00e9 cr\u00e8me"


def test_class_checks(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="single class"):
        owndata.Labelled({"all": (["a", "b", "c"], ["x", "x", "x"])}, "one.csv").encoded()
    with pytest.raises(DataFileError, match="60 classes, more than this profile trains sensibly \\(50\\)"):
        owndata.Labelled({"all": ([str(i) for i in range(180)], [f"c{i % 60}" for i in range(180)])}, "f").encoded(50)
    with pytest.raises(DataFileError, match="fewer than 3 examples.*rare \\(1\\)"):
        owndata.Labelled({"all": (["a"] * 7, ["x", "y"] * 3 + ["rare"])}, "f").encoded()
    with pytest.raises(DataFileError, match="test split has classes the training data lacks: z"):
        owndata.Labelled({"train": (["a"] * 4, ["x", "y"] * 2), "test": (["b"], ["z"])}, "f").encoded()


def test_text_class_folders_with_and_without_splits(tmp_path: Path) -> None:
    for cls, texts in {"sports": ["goal!", "match"], "politics": ["vote", "law<br />making"], "tech": ["chips"]}.items():
        for i, text in enumerate(texts):
            write(tmp_path / "flat" / cls / f"{i}.txt", text)
            write(tmp_path / "split" / "train" / cls / f"{i}.txt", text)
        write(tmp_path / "split" / "test" / cls / "t.txt", f"test {cls}")
    flat = owndata.read_text_source(tmp_path / "flat")
    assert set(flat.parts) == {"all"} and flat.class_names() == ("politics", "sports", "tech")
    assert "law making" in flat.parts["all"][0]
    split = owndata.read_text_source(tmp_path / "split")
    assert set(split.parts) == {"train", "test"} and split.parts["test"][1] == ["politics", "sports", "tech"]


def test_bad_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="is not a folder \\(it does not exist\\)"):
        owndata.read_folder(tmp_path / "nope", (".txt",), "text")
    (tmp_path / "noclasses").mkdir()
    with pytest.raises(DataFileError, match="no class sub-folders"):
        owndata.read_folder(tmp_path / "noclasses", (".txt",), "text")
    write(tmp_path / "oneempty" / "a" / "x.txt", "hello")
    (tmp_path / "oneempty" / "b").mkdir()
    with pytest.raises(DataFileError, match=f"{tmp_path / 'oneempty' / 'b'} holds no text files"):
        owndata.read_folder(tmp_path / "oneempty", (".txt",), "text")
    write(tmp_path / "emptyfile" / "a" / "x.txt", "")
    write(tmp_path / "emptyfile" / "b" / "y.txt", "fine")
    with pytest.raises(DataFileError, match="x.txt is empty: each .txt file holds one example"):
        owndata.read_text_source(tmp_path / "emptyfile")


def test_is_path_tells_files_from_registered_names(tmp_path: Path) -> None:
    assert not owndata.is_path("imdb") and not owndata.is_path("cats_and_dogs")
    assert owndata.is_path("my_reviews.tsv") and owndata.is_path("data/photos") and owndata.is_path(tmp_path)


# --------------------------------------------------------------------------------------------------
# Through the loaders: the same TextData / ImageData the lessons use
# --------------------------------------------------------------------------------------------------

def _topics_csv(path: Path, per_class: int = 30) -> Path:
    rows = ["text,label"]
    for label, word in (("sport", "goal"), ("politics", "vote"), ("tech", "chip")):
        rows += [f"{word} number {i} in a short sentence,{label}" for i in range(per_class)]
    return write(path, "\n".join(rows) + "\n")


def test_load_text_on_a_three_class_csv(kit_env: Path, capsys: pytest.CaptureFixture) -> None:
    data = kitlib.load_text(_topics_csv(kit_env / "topics.csv"), seed=1)
    assert isinstance(data, kitlib.TextData) and data.class_names == ("politics", "sport", "tech")
    sizes = {split: len(data.labels(split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 63, "val": 9, "test": 18} and sum(sizes.values()) == 90
    for split in sizes:  # stratified: every class in every split, in proportion
        assert np.bincount(data.labels(split), minlength=3).tolist() == [sizes[split] // 3] * 3
    train, test = set(data.texts("train")), set(data.texts("test"))
    assert not train & test
    printed = capsys.readouterr().out
    assert "your data: topics.csv (3 classes: politics, sport, tech)" in printed
    assert "one pool, split stratified with seed 1" in printed
    again = kitlib.load_text(kit_env / "topics.csv", seed=1, verbose=False)
    assert list(again.texts("test")) == list(data.texts("test"))  # seeded


def test_load_text_keeps_a_given_test_file_and_carves_validation(kit_env: Path) -> None:
    train = _topics_csv(kit_env / "train.csv", per_class=20)
    test = write(kit_env / "test.tsv", "sentence\tclass\nvote now\tpolitics\nnew chip\ttech\nlate goal\tsport\n")
    data = kitlib.load_text(train, test_file=test, verbose=False)
    assert sorted(data.texts("test")) == ["late goal", "new chip", "vote now"]
    assert len(data.labels("val")) == 6 and len(data.labels("train")) == 54
    assert "given splits (train, test) kept; val carved from train" in data.source


def test_load_images_on_class_folders_with_splits_and_a_broken_file(kit_env: Path) -> None:
    from PIL import Image

    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    for split, count in (("train", 8), ("validation", 2), ("test", 3)):
        for name, rgb in colours.items():
            folder = kit_env / "photos" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20 + i, 12), rgb).save(folder / f"{i}.png")
    (kit_env / "photos" / "train" / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    data = kitlib.load_images(kit_env / "photos", image_size=8, verbose=False)
    assert isinstance(data, kitlib.ImageData) and data.class_names == ("blue", "green", "red")
    assert [len(data.labels(s)) for s in ("train", "val", "test")] == [24, 6, 9]
    assert [Path(p).name for p in data.skipped] == ["broken.jpg"]
    red = data.images("test")[data.labels("test") == 2]
    assert red.shape == (3, 8, 8, 3) and (red[..., 0] > red[..., 2]).all()


def test_a_class_with_no_readable_image_is_refused(kit_env: Path) -> None:
    from PIL import Image

    for i in range(4):
        (kit_env / "pics" / "ok").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(kit_env / "pics" / "ok" / f"{i}.png")
        (kit_env / "pics" / "bad").mkdir(exist_ok=True)
        (kit_env / "pics" / "bad" / f"{i}.jpg").write_bytes(b"junk")
    with pytest.raises(DataFileError, match="No image of class 'bad' .* could be read \\(4 unreadable"):
        kitlib.load_images(kit_env / "pics", image_size=8, verbose=False)


def test_bad_own_data_writes_nothing_to_the_cache(kit_env: Path) -> None:
    with pytest.raises(DataFileError):
        kitlib.load_text(write(kit_env / "one.csv", "text,label\na,x\nb,x\nc,x\n"), verbose=False)
    assert not (kit_env / "cache").exists() or not any((kit_env / "cache").rglob("*"))


def test_example_data_is_written_once_and_reads_back_as_three_and_two_classes(tmp_path: Path, monkeypatch) -> None:
    from kitlib.data import examples

    text = examples.example_data("text", tmp_path)
    stamp = text.stat().st_mtime_ns
    assert examples.example_data("text", tmp_path).stat().st_mtime_ns == stamp, "written only if missing"
    texts, labels = owndata.read_table(text)
    assert sorted(set(labels)) == ["fresh", "plot", "rotten"] and len(texts) == len(set(texts)) > 10_000
    faces = examples.example_data("image", tmp_path)
    assert sorted(p.name for p in faces.iterdir()) == ["face", "not_face"]
    assert [len(list((faces / c).glob("*.png"))) for c in ("face", "not_face")] == [100, 100]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left behind"
    data = kitlib.load_images(faces, None, image_size=32, verbose=False)
    assert data.class_names == ("face", "not_face") and not data.skipped
    with pytest.raises(ValueError, match="choose 'text' or 'image'"):
        examples.example_data("audio", tmp_path)

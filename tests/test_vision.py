"""kitlib.vision: the photo loader, the restricted legacy-PyTorch reader, the converted MobileNetV2 and its TF Hub export."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kitlib import datasets, hub, pack, vision

needs_weights = pytest.mark.skipif(
    pack.package_dir(vision.MOBILENET_WEIGHTS[0]) is None, reason="offline pack not installed (python -m kitlib pack)"
)


# --- the restricted unpickler ------------------------------------------------------------------


class Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def legacy_file(path: Path, payload: object) -> Path:
    """A file laid out like a legacy PyTorch checkpoint (magic, protocol, sys info) with `payload` as its object."""
    with open(path, "wb") as f:
        for part in (vision.LEGACY_MAGIC, vision.LEGACY_PROTOCOL, {"little_endian": True}, payload, []):
            pickle.dump(part, f, protocol=2)
    return path


def test_restricted_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = legacy_file(tmp_path / "evil.pth", {"weight": Exploit(marker)})
    with pytest.raises(vision.UnsafePickleError, match=r"Refusing to load (posix|os|nt)\.system.*tensor state dict"):
        vision.read_legacy_torch(path)
    assert not marker.exists(), "the command ran"
    # The same object as the very first pickle (where the magic number belongs) is refused too.
    (tmp_path / "evil2.pth").write_bytes(pickle.dumps(Exploit(marker), protocol=2))
    with pytest.raises(vision.UnsafePickleError, match="Refusing to load"):
        vision.read_legacy_torch(tmp_path / "evil2.pth")
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals_and_odd_persistent_ids(tmp_path: Path) -> None:
    with pytest.raises(vision.UnsafePickleError, match=r"Refusing to load (__builtin__|builtins)\.eval"):
        vision.read_legacy_torch(legacy_file(tmp_path / "eval.pth", {"x": eval}))
    with pytest.raises(vision.UnsafePickleError, match="only tensor storages"):
        vision.RestrictedUnpickler(__import__("io").BytesIO(b"\x80\x02X\x03\x00\x00\x00abcQ.")).load()


@needs_weights
def test_reads_the_real_checkpoint_as_numpy() -> None:
    state = vision.read_legacy_torch(pack.asset(*vision.MOBILENET_WEIGHTS))
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280) and state["classifier.1.weight"].dtype == np.float32
    assert all(isinstance(v, np.ndarray) for v in state.values())


# --- the converted MobileNetV2 ------------------------------------------------------------------


@needs_weights
def test_converted_mobilenet_v2_knows_a_cat_and_an_espresso() -> None:
    from skimage import data

    model = vision.mobilenet_v2_imagenet(include_top=True)
    assert all(layer.epsilon == 1e-5 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    cat = vision.top_k(model, data.chelsea(), k=5)
    coffee = vision.top_k(model, data.coffee(), k=5)
    assert 281 <= cat[0][0] <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee[0][0] == 967, coffee  # espresso
    assert cat[0][2] > 0.5 and coffee[0][2] > 0.5, "confident, as torchvision is on these photos"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> str:
    if pack.package_dir(vision.MOBILENET_WEIGHTS[0]) is None:
        pytest.skip("offline pack not installed")
    folder = tmp_path_factory.mktemp("mobilenet")
    roles = vision.export_mobilenet_v2(folder)
    assert roles == {"feature_vector": "feature_vector"}
    return str(folder / roles["feature_vector"])


def test_exported_feature_vector_fine_tunes_through_hub_layer(exported: str) -> None:
    layer = hub.HubLayer(exported, trainable=True, inference_only=True, name="backbone")  # as in lesson 05
    assert layer(np.random.rand(2, 64, 64, 3).astype("float32")).shape == (2, 1280)
    for variable in layer.trainable_weights[:-6]:
        variable.trainable = False  # fine-tune only the top
    top = layer.trainable_weights
    assert len(top) == 6 and top[-1].name.startswith("Conv_1")
    stats = [v for v in layer.non_trainable_weights if "moving" in v.name]
    top_before, stats_before = [v.numpy().copy() for v in top], [v.numpy().copy() for v in stats]
    frozen_before = [v.numpy().copy() for v in layer.non_trainable_weights if v.trainable is False and "moving" not in v.name]

    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(layer(inputs)))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
    x = np.random.default_rng(0).random((16, 64, 64, 3)).astype("float32")
    model.fit(x, (np.arange(16) % 2).astype("float32"), batch_size=8, epochs=1, verbose=0)

    assert all(not np.allclose(b, v.numpy()) for b, v in zip(top_before, top)), "AdamW changed the unfrozen weights"
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(stats_before, stats)), "BatchNorm stayed in inference mode"
    after = [v.numpy() for v in layer.non_trainable_weights if v.trainable is False and "moving" not in v.name]
    assert all(np.array_equal(b, a) for b, a in zip(frozen_before, after)), "frozen weights stayed put"


def test_training_flag_reaches_the_exported_batchnorm(exported: str) -> None:
    layer = hub.HubLayer(exported, trainable=True)
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    assert not np.allclose(layer(x, training=True), layer(x, training=False), atol=1e-3)


# --- the photo loader ---------------------------------------------------------------------------


def write_jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 30, 3), value, np.uint8)).save(path, "JPEG")


def make_cats_and_dogs(root: Path, per_folder: int = 4) -> Path:
    top = root / "cats_and_dogs_filtered"
    for split in ("train", "validation"):
        for label, name in enumerate(("cats", "dogs")):
            for i in range(per_folder):
                write_jpeg(top / split / name / f"{name[:-1]}.{i}.jpg", 40 + 150 * label + i)
    return top


def test_loader_skips_and_counts_unreadable_images(kit_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = make_cats_and_dogs(kit_env / "share")
    (top / "train" / "cats" / "cat.99.jpg").write_bytes(b"this is not a JPEG")
    good = (top / "train" / "dogs" / "dog.0.jpg").read_bytes()
    (top / "validation" / "dogs" / "dog.99.jpg").write_bytes(good[: len(good) // 2])  # truncated
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    data = vision.load_images("cats_and_dogs", image_size=24, val_size=2, verbose=False)
    assert data.source.startswith("KITLIB_DATA_DIR") and data.class_names == ("cats", "dogs")
    assert sorted(Path(p).name for p in data.skipped) == ["cat.99.jpg", "dog.99.jpg"]
    sizes = {split: len(data.labels(split)) for split in ("train", "val", "test")}
    assert sizes["train"] + sizes["val"] == 8 and sizes["test"] == 8, sizes  # 9 files in each folder, 1 bad
    assert "skipped 2 unreadable file(s)" in data.summary()
    images, labels = next(iter(data.dataset("test", batch_size=8, shuffle=False)))
    assert images.shape == (8, 24, 24, 3) and images.dtype == tf.float32 and float(tf.reduce_max(images)) <= 1.0
    dark_cats = images.numpy()[labels.numpy() == 0].mean()
    assert dark_cats < images.numpy()[labels.numpy() == 1].mean(), "labels follow the class folders"


def test_loader_refuses_a_wrong_layout_and_shows_the_expected_one(kit_env: Path, monkeypatch) -> None:
    write_jpeg(kit_env / "share" / "cats_and_dogs_filtered" / "train" / "cats" / "cat.0.jpg", 10)
    monkeypatch.setenv("KITLIB_DATA_DIR", str(kit_env / "share"))
    with pytest.raises(datasets.LayoutError, match=r"(?s)missing: train/dogs, validation/cats.*validation/dogs/\.\.\."):
        vision.load_images("cats_and_dogs", image_size=24, verbose=False)


def test_offline_falls_back_to_lfw_and_names_it(kit_env: Path, capsys) -> None:
    data = vision.load_images("cats_and_dogs", image_size=32, val_size=30, test_size=30)
    assert data.name == "lfw" and data.class_names == ("face", "non-face")
    assert "lfw_subset" in data.source and "standing in for cats vs dogs" in data.source
    assert "KITLIB_OFFLINE=1" in data.source
    assert {s: len(data.labels(s)) for s in data.splits} == {"train": 140, "val": 30, "test": 30}
    assert data.images("train").shape[1:] == (32, 32, 3) and data.images("train").dtype == np.uint8
    assert all(np.bincount(data.labels(s)).tolist() == [len(data.labels(s)) // 2] * 2 for s in data.splits)
    printed = capsys.readouterr().out
    assert "LFW faces vs non-faces" in printed and "standing in for cats vs dogs" in printed


def test_unknown_image_dataset_lists_the_known(kit_env: Path) -> None:
    with pytest.raises(datasets.UnknownDatasetError, match="cats_and_dogs, lfw"):
        vision.load_images("imagenet")

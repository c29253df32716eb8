"""kitlib.models.standins: the converted MobileNetV2 and its TF Hub export; the registry exports stand-ins by function."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from kitlib.models import hub, standins
from kitlib.data import pack

needs_weights = pytest.mark.skipif(
    pack.package_dir(standins.MOBILENET_V2_ASSET[0]) is None, reason="offline pack not installed (python -m kitlib pack)"
)


def test_every_registered_model_falls_back_to_an_exporter_function() -> None:
    stand_ins = {name: model.stand_in for name, model in hub.MODELS.items()}
    assert {s.export for s in stand_ins.values()} == {standins.export_minilm, standins.export_mobilenet_v2}
    assert stand_ins["bert_en_uncased"] is standins.MINILM and stand_ins["resnet_v2_50"] is standins.MOBILENET_V2


# --- the converted MobileNetV2 ------------------------------------------------------------------


@needs_weights
def test_converted_mobilenet_v2_knows_a_cat_and_an_espresso() -> None:
    from skimage import data

    model = standins.mobilenet_v2_imagenet(include_top=True)
    assert all(layer.epsilon == 1e-5 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    cat = standins.top_k(model, data.chelsea(), k=5)
    coffee = standins.top_k(model, data.coffee(), k=5)
    assert 281 <= cat[0][0] <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee[0][0] == 967, coffee  # espresso
    assert cat[0][2] > 0.5 and coffee[0][2] > 0.5, "confident, as torchvision is on these photos"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> str:
    if pack.package_dir(standins.MOBILENET_V2_ASSET[0]) is None:
        pytest.skip("offline pack not installed")
    folder = tmp_path_factory.mktemp("mobilenet")
    roles = standins.export_mobilenet_v2(folder)
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

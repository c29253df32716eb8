"""Lesson 05 (fine-tuning an ImageNet CNN): the augmentation layer, the from-scratch CNN."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import (
    CheckFailed,
    call,
    error_summary,
    exercise,
    expect,
    expect_unseen,
    passed,
    sublayers,
    tolerance,
)

MAX_ROTATION = 0.1  # fraction of a full turn: ±36°
MAX_ZOOM = 0.3  # ±30%
_AUGMENT_SECTION = "'Data augmentation' and Exercise 1 in lesson 05"
_CNN_SECTION = "'The baseline: a small CNN from scratch' in lesson 05"


def _extent(factor: Any) -> float:
    """The largest |value| of a Random* layer factor given as a number or a (lower, upper) pair."""
    if factor is None:
        return 0.0
    return float(max(abs(f) for f in factor)) if isinstance(factor, (tuple, list)) else abs(float(factor))


@exercise("""
    keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.05),
                      keras.layers.RandomZoom(0.1)])
    """, "build_augmentation")
def augmentation(layer: Any, image_size: int) -> None:
    """Check an augmentation layer: horizontal flips, a small rotation and zoom; identity at inference."""
    import keras
    import tensorflow as tf

    expect(isinstance(layer, keras.layers.Layer), "build_augmentation should return a Keras layer (or Sequential).",
           "keras.Sequential([...])", type(layer).__name__, "A Sequential of Random* layers is itself a layer.")
    parts = sublayers(layer)
    names = [type(part).__name__ for part in parts]
    flips = [part for part in parts if isinstance(part, keras.layers.RandomFlip)]
    expect(bool(flips), "Mirror photos left-right.", "keras.layers.RandomFlip('horizontal')", names,
           f"Mirroring is one of the random layers listed in {_AUGMENT_SECTION}.")
    modes = [part.get_config()["mode"] for part in flips]
    expect(all(mode == "horizontal" for mode in modes), "Flip horizontally only: an upside-down pet is not a photo "
           "the model will be shown (RandomFlip() flips vertically too).", "mode='horizontal'", modes,
           "The flip layer's mode says which directions it mirrors.")
    rotations = [_extent(part.get_config()["factor"]) for part in parts
                 if isinstance(part, keras.layers.RandomRotation)]
    expect(bool(rotations) and all(0 < r <= MAX_ROTATION for r in rotations),
           f"A small rotation: at most ±{MAX_ROTATION} of a full turn (±{MAX_ROTATION * 360:.0f}°); 0.5 would turn "
           "photos upside down.", f"RandomRotation(factor) with 0 < factor <= {MAX_ROTATION}",
           rotations or names, "A rotation factor is a fraction of a full turn: 0.05 is ±18°.")
    zooms = [max(_extent(part.get_config()["height_factor"]), _extent(part.get_config()["width_factor"]))
             for part in parts if isinstance(part, keras.layers.RandomZoom)]
    expect(bool(zooms) and all(0 < z <= MAX_ZOOM for z in zooms),
           f"A small zoom: at most ±{MAX_ZOOM:.0%}; 0.9 can shrink a pet to a few pixels.",
           f"RandomZoom(factor) with 0 < factor <= {MAX_ZOOM}", zooms or names,
           f"A zoom factor is a fraction of the image: see {_AUGMENT_SECTION}.")
    rng = np.random.default_rng(0)
    x = rng.random((4, image_size, image_size, 3)).astype("float32")
    x[:, :, : image_size // 2] *= 0.2  # left half darker: a horizontal flip shows
    same = np.asarray(layer(x, training=False))
    atol = tolerance(layer.compute_dtype)  # under mixed precision the image passes through the policy's float
    expect(same.shape == x.shape and np.allclose(same, x, atol=atol),
           "At inference (validation, test, predict) augmentation must leave images untouched.",
           "the input unchanged", "changed images" if same.shape == x.shape else same.shape,
           "Random* layers act only when training=True; other layers change every image, always.")
    train_step = tf.function(lambda images: layer(images, training=True))  # as inside fit
    first, second = np.asarray(train_step(x)), np.asarray(train_step(x))
    expect(first.shape == x.shape, "Augmentation keeps the image size.", x.shape, first.shape,
           "Crop-like layers must give back the same size (RandomZoom and RandomRotation do).")
    expect(not np.allclose(first, x, atol=max(atol, 1e-3)) and not np.allclose(first, second, atol=max(atol, 1e-3)),
           "In training each call should give a new random variant.", "different outputs per call",
           "unchanged or identical outputs", "Do not fix the layers' randomness to a constant.")
    expect(float(first.min()) >= -0.05 and float(first.max()) <= 1.05, "Pixels should stay in [0, 1].",
           "[0, 1]", (round(float(first.min()), 3), round(float(first.max()), 3)),
           "Avoid RandomContrast/RandomBrightness ranges that leave [0, 1], or pass value_range=(0, 1).")
    passed("horizontal flips, a small rotation and zoom in training, the original image at inference.")


def _builds_any_size(build: Callable[[int], Any], image_size: int) -> None:
    """Build the CNN for another image size; fail unless it takes that size and still gives one probability."""
    other = image_size + 16
    model = call(build, other)
    try:
        shape = tuple(model.input_shape)
        probs = np.asarray(model.predict(np.zeros((3, other, other, 3), "float32"), verbose=0))
    except Exception as exc:
        raise CheckFailed("A case not shown failed: the model built for another image size fails on images of that "
                          f"size.\n  error: {error_summary(exc)}\n  hint: build the input from the image_size the "
                          "function receives.") from exc
    expect_unseen(shape[1:] == (other, other, 3) and probs.shape == (3, 1), "the model built for another image "
                  "size does not take images of that size, or does not give one probability per image.",
                  "Build the input from the image_size the function receives.")


@exercise("""
    inputs = keras.Input((image_size, image_size, 3)); then, for filters in (16, 32, 64, 128):
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x); x = keras.layers.MaxPooling2D()(x);
    then keras.layers.GlobalAveragePooling2D(), and keras.layers.Dense(1, activation="sigmoid") last.
    """, "build_scratch_cnn")
def scratch_cnn(model: Any, image_size: int, build: Callable[[int], Any] | None = None) -> None:
    """Check a from-scratch CNN: [0, 1] RGB images in, stacked Conv2D + pooling, one sigmoid probability out.

    Given the lesson's `build` function, also check that it builds a CNN for another image size.
    """
    import keras

    layers = [layer for layer in sublayers(model) if layer is not model]
    names = [type(layer).__name__ for layer in layers]
    rescale = [layer for layer in layers if isinstance(layer, keras.layers.Rescaling) and layer.scale != 1]
    expect(not rescale, "The images already arrive in [0, 1]: rescaling them again squashes them to near 0.",
           "no Rescaling layer", [f"Rescaling(scale={layer.scale})" for layer in rescale],
           "The lesson's pipeline already divided by 255: the model must not do it again.")
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    expect(len(convs) >= 3, "A VGG-style CNN stacks at least three convolution blocks.", ">= 3 Conv2D layers",
           f"{len(convs)} Conv2D in {names}", f"A block is a convolution then a pooling: see {_CNN_SECTION}.")
    pools = [layer for layer in layers if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                                                             keras.layers.GlobalAveragePooling2D,
                                                             keras.layers.GlobalMaxPooling2D))]
    expect(len(pools) >= 2, "Pooling shrinks the feature maps between blocks.", ">= 2 pooling layers", names,
           "Each block ends by halving the resolution.")
    filters = [layer.filters for layer in convs]
    expect(filters[-1] > filters[0], "Deeper blocks see larger regions and need more filters.",
           "filters growing with depth, e.g. [32, 64, 128]", filters,
           f"Each block doubles the filters: see {_CNN_SECTION}.")
    x = np.random.default_rng(0).random((2, image_size, image_size, 3)).astype("float32")
    try:
        probs = np.asarray(model.predict(x, verbose=0))  # compiled, as fit and evaluate run it
    except Exception as exc:
        raise CheckFailed(f"The model fails on a batch of two ({image_size}, {image_size}, 3) images in [0, 1].\n"
                          f"  error: {error_summary(exc)}\n"
                          "  hint: the model's input is (image_size, image_size, 3), from the argument it was built "
                          "with.") from exc
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError):
        shape = ()
    expect(shape[1:] == (image_size, image_size, 3), "The model takes (image_size, image_size, 3) RGB images.",
           (None, image_size, image_size, 3), shape or "no input shape",
           "The model's input shape comes from the image_size argument.")
    expect(probs.shape == (2, 1), "One output per image: the probability of the second class.", (2, 1), probs.shape,
           "Two classes need one output: the probability of the second, the first being 1 minus it.")
    head = getattr(layers[-1], "activation", None)
    expect(head is keras.activations.sigmoid and bool(np.all((probs >= 0) & (probs <= 1))),
           "Outputs should be probabilities in [0, 1]: the last layer applies a sigmoid.",
           "Dense(1, activation='sigmoid')",
           f"{names[-1]} with activation {getattr(head, '__name__', None)}, outputs {probs.ravel()}",
           "Which activation squashes any score into (0, 1)? The last layer needs it.")
    if build is not None:
        _builds_any_size(build, image_size)
    passed(f"{len(convs)} convolutions with filters {filters}, one probability per image.")

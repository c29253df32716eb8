"""Lesson 07's plumbing: measuring size and latency, a polynomial sparsity schedule, magnitude pruning for Keras 3.

tensorflow-model-optimization's pruning wraps tf_keras (Keras 2) layers only: given a Keras 3 model,
`prune_low_magnitude` refuses it ("can only prune an object of the following types: keras.models.Sequential
... You passed an object of type: Sequential", tfmot 0.8.1, checked here). `MagnitudePruning` is the same
algorithm (Zhu & Gupta 2017, tfmot's `PolynomialDecay` schedule) as a Keras 3 callback.
"""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

PRUNABLE = ("Dense", "Conv2D", "Conv1D", "DepthwiseConv2D", "EinsumDense")


def size_bytes(path_or_bytes: Path | str | bytes) -> int:
    """Bytes of a flatbuffer, a file, or every file under a folder (a SavedModel)."""
    if isinstance(path_or_bytes, bytes):
        return len(path_or_bytes)
    path = Path(path_or_bytes)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def gzip_bytes(path_or_bytes: Path | str | bytes) -> int:
    """Bytes after gzip (level 9) of a flatbuffer or a file: what zeros and repeated values save on the wire."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def keras_file_bytes(model: Any) -> tuple[int, int]:
    """(bytes, gzipped bytes) of the model's weights as stored arrays (`np.savez`), optimizer state excluded.

    A `.keras` or `.weights.h5` file of a compiled, trained model also holds the optimizer's slots (Adam: twice
    the weights; Keras 3 ignores `include_optimizer=False` for `.keras`), so they would not compare models fairly.
    Quantised Keras layers store int8 kernels and float scales, and are counted as such.
    """
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w) for w in model.get_weights()])
    return size_bytes(buffer.getvalue()), gzip_bytes(buffer.getvalue())


def latency_ms(fn: Callable[[], Any], repeats: int = 50, warmup: int = 3) -> float:
    """Median wall time of `fn()` in milliseconds, after a few untimed warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def keras_latency_ms(model: Any, example: np.ndarray, repeats: int = 50) -> float:
    """Median milliseconds of one compiled forward pass on `example` (a batch), without `predict`'s overhead."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    x = tf.constant(example)
    return latency_ms(lambda: np.asarray(forward(x)), repeats)


def polynomial_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                        initial_sparsity: float = 0.0, power: float = 3.0) -> float:
    """Target sparsity at `step`: `initial` before `begin_step`, rising fast then slowly to `final` at `end_step`.

    s(t) = final + (initial - final) * (1 - t) ** power, with t the fraction of [begin_step, end_step] done
    (Zhu & Gupta, "To prune, or not to prune", 2017; tfmot's PolynomialDecay).
    """
    if end_step <= begin_step:
        raise ValueError(f"end_step ({end_step}) must come after begin_step ({begin_step}).")
    if step < begin_step:
        return float(initial_sparsity)
    done = min(1.0, (step - begin_step) / (end_step - begin_step))
    return float(final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - done) ** power)


def prunable_kernels(model: Any) -> list[Any]:
    """The kernels (not biases or norms) of the model's Dense and convolution layers."""
    return [layer.kernel for layer in model._flatten_layers(include_self=False)
            if type(layer).__name__ in PRUNABLE and getattr(layer, "kernel", None) is not None]


def sparsity(model: Any) -> float:
    """Fraction of exact zeros among the prunable kernels' weights."""
    kernels = [np.asarray(k) for k in prunable_kernels(model)]
    total = sum(k.size for k in kernels)
    return float(sum(int((k == 0).sum()) for k in kernels) / max(total, 1))


class MagnitudePruning(keras.callbacks.Callback):
    """A Keras 3 callback: on a polynomial schedule, zero each kernel's smallest-magnitude weights, keep them zero.

    Every `frequency` steps between `begin_step` and `end_step` it asks `mask_fn(weights, sparsity)` for a new
    0/1 mask per kernel; after every training step it multiplies each kernel by its mask, so the optimizer
    cannot bring pruned weights back. `masks` holds the current masks; `history` the (step, sparsity) targets.
    """

    def __init__(self, mask_fn: Callable[[np.ndarray, float], np.ndarray], final_sparsity: float,
                 begin_step: int, end_step: int, frequency: int = 10, power: float = 3.0) -> None:
        super().__init__()
        self.mask_fn, self.final_sparsity, self.power = mask_fn, final_sparsity, power
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, max(1, frequency)
        self.step = 0
        self.masks: dict[str, np.ndarray] = {}
        self.history: list[tuple[int, float]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        for kernel in prunable_kernels(self.model):
            self.masks.setdefault(kernel.path, np.ones(kernel.shape, dtype=np.float32))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        update = self.begin_step <= self.step <= self.end_step and (
            (self.step - self.begin_step) % self.frequency == 0 or self.step == self.end_step)
        target = polynomial_sparsity(self.step, self.final_sparsity, self.begin_step, self.end_step, power=self.power)
        for kernel in prunable_kernels(self.model):
            weights = np.asarray(kernel)
            if update:
                self.masks[kernel.path] = np.asarray(self.mask_fn(weights, target), dtype=np.float32)
            kernel.assign(weights * self.masks[kernel.path])
        if update:
            self.history.append((self.step, target))

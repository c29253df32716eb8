"""Lesson 07's pruning: a polynomial sparsity schedule and magnitude pruning for Keras 3 (sizes and latency: `measure`).

tensorflow-model-optimization's pruning wraps tf_keras (Keras 2) layers only: given a Keras 3 model,
`prune_low_magnitude` refuses it ("can only prune an object of the following types: keras.models.Sequential
... You passed an object of type: Sequential", tfmot 0.8.1, checked here). `MagnitudePruning` is the same
algorithm (Zhu & Gupta 2017, tfmot's `PolynomialDecay` schedule) as a Keras 3 callback.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import keras
import numpy as np

PRUNABLE = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
            keras.layers.EinsumDense)


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


def layers_of(model: Any) -> Iterator[Any]:
    """Every layer of `model`, depth first, through the public `layers` of nested models and Sequentials.

    Sub-layers a custom (non-model) layer keeps as attributes are not listed: Keras 3 has no public API for them.
    """
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from layers_of(layer)


def quantize_int8(model: Any, only: Callable[[Any], bool]) -> list[str]:
    """Quantise the layers `only` picks to int8 in place (lesson 07); return the names of those now in int8.

    `model.quantize("int8", filters=only)` where Keras has `filters` (3.11 and later); on older Keras 3 each
    picked layer is quantised with its own public `layer.quantize("int8")`, the model's compiled functions are
    rebuilt (`make_*_function(force=True)`) so the next call traces the int8 path, and a note says so.
    """
    picked = [layer for layer in layers_of(model) if only(layer) and hasattr(layer, "quantize")]
    try:
        model.quantize("int8", filters=only)
    except ValueError as exc:
        if "filters" not in str(exc):
            raise
        print(f"note: Keras {keras.__version__} has no quantize(filters=...): quantising the {len(picked)} picked "
              "layers one by one")
        for layer in picked:
            layer.quantize("int8")
        for make in (model.make_train_function, model.make_test_function, model.make_predict_function):
            make(force=True)
    return [layer.name for layer in picked if getattr(layer, "quantization_mode", None) == "int8"]


def prunable_kernels(model: Any) -> list[Any]:
    """The kernels (not biases or norms) of the model's Dense and convolution layers."""
    return [layer.kernel for layer in layers_of(model)
            if isinstance(layer, PRUNABLE) and getattr(layer, "kernel", None) is not None]


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

"""Lesson 04 (fine-tuning BERT): the warm-up + linear-decay schedule, unfreezing the top transformer layers."""

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
    unseen_rng,
)

_GRAPH_HINT = ("Inside fit the step is an int64 tensor in a compiled function: Python `if`, `max` and `min` need a "
               "concrete number, and an int64 step does not mix with float rates. The exercise's prompt names what "
               "to use instead.")
_SCHEDULE_SECTION = "'AdamW, warm-up and decay' in lesson 04"
_UNFREEZE_SECTION = "'Strategy 2: unfreeze the top layers' in lesson 04"


def _rates(schedule: Any, steps: list[int], how: str) -> list[float]:
    """The schedule's rates at `steps`, called the way `how` says (the plot's Python ints, or as an optimizer does)."""
    import tensorflow as tf

    step = tf.Variable(0, dtype=tf.int64, trainable=False)  # what optimizer.iterations is
    if how == "Python int":
        run = None
    elif how.startswith("eager"):
        run = lambda: schedule(step)  # noqa: E731
    else:
        run = tf.function(lambda: schedule(step), jit_compile="XLA" in how)
    rates = []
    for value in steps:
        step.assign(value)
        try:
            rates.append(float(np.asarray(schedule(value) if run is None else run())))
        except Exception as exc:
            raise CheckFailed(f"The schedule fails when called {'with' if run is None else 'as the optimizer calls it'}"
                              f" ({how}).\n  error: {error_summary(exc)}\n  hint: {_GRAPH_HINT}") from exc
    return rates


def _schedule_rate(peak: float, warmup: int, total: int, step: int) -> float:
    """The reference rate at `step`."""
    return peak * step / warmup if step < warmup else peak * max(0.0, (total - step) / (total - warmup))


@exercise("""
    A LearningRateSchedule subclass whose __call__(self, step) does: step = keras.ops.cast(step, "float32");
    up = peak * step / warmup_steps; down = peak * keras.ops.maximum(0.0, (total_steps - step) /
    (total_steps - warmup_steps)); return keras.ops.where(step < warmup_steps, up, down).
    warmup_linear_decay returns an instance of it, not a function.
    """, "warmup_linear_decay")
def warmup_linear_decay(fn: Callable[[float, int, int], Any]) -> None:
    """Check `fn(peak, warmup_steps, total_steps)` warms up to peak, then decays to 0, also as fit calls it."""
    import keras

    schedule = call(fn, 1e-3, 10, 110)
    expect(isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule),
           "Return a LearningRateSchedule: the object AdamW calls with its step counter (and saves with the model).",
           "an instance of a keras.optimizers.schedules.LearningRateSchedule subclass", type(schedule).__name__,
           "Subclass keras.optimizers.schedules.LearningRateSchedule and return an instance of it, not a function.")
    steps = [0, 5, 10, 60, 110, 200]
    for how in ("Python int", "eager, step = an int64 tf.Variable", "tf.function, step = an int64 tf.Variable",
                "tf.function with XLA (jit_compile=True), step = an int64 tf.Variable"):
        for step, got in zip(steps, _rates(schedule, steps, how)):
            want = _schedule_rate(1e-3, 10, 110, step)
            phase = ("warm-up: rises linearly from 0" if step < 10 else
                     "decay: falls linearly to 0 at total_steps" if step <= 110 else "after total_steps: stays 0")
            expect(abs(got - want) <= 1e-6, f"Learning rate at step {step} ({phase}), step given as a {how}.", want,
                   got, f"Two straight lines meet at warmup_steps, and the rate never goes below 0: see "
                   f"{_SCHEDULE_SECTION}.")
    rng = unseen_rng("warmup_linear_decay")
    for _ in range(2):
        peak, warmup = float(10 ** rng.uniform(-5, -3)), int(rng.integers(2, 30))
        total = warmup + int(rng.integers(5, 200))
        steps = [0, int(rng.integers(1, warmup)), warmup, int(rng.integers(warmup + 1, total)), total, total + 7]
        want = [_schedule_rate(peak, warmup, total, step) for step in steps]
        schedule = call(fn, peak, warmup, total)
        for how in ("Python int", "tf.function, step = an int64 tf.Variable"):
            expect_unseen(np.allclose(_rates(schedule, steps, how), want, rtol=1e-4, atol=1e-4 * peak),
                          f"another peak, warm-up length and total length (step given as a {how}): the rates are "
                          "not right.", "Use peak, warmup_steps and total_steps as given, in both straight lines.")
    passed("warm-up then linear decay, as BERT was trained and fine-tuned, also inside a compiled training step.")


def _backbone(num_layers: int) -> Any:
    """A tiny keras-hub BertBackbone with `num_layers` transformer layers."""
    import keras_hub

    return keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=num_layers, num_heads=2, hidden_dim=8,
                                         intermediate_dim=16, max_sequence_length=16)


def _only_top_train(backbone: Any, n: int) -> bool:
    """Whether the backbone trains exactly the weights of its top n transformer layers."""
    layers = backbone.transformer_layers
    top = sum(len(layer.trainable_weights) for layer in layers[len(layers) - n:])
    flags = [layer.trainable for layer in layers]
    return backbone.trainable and flags == [i >= len(layers) - n for i in range(len(layers))] and len(
        backbone.trainable_weights) == top


@exercise("""
    for layer in backbone.layers: layer.trainable = False
    then for layer in backbone.transformer_layers[len(backbone.transformer_layers) - n:]: layer.trainable = True
    (not [-n:]: with n = 0 that is the whole list).
    """, "unfreeze_top_layers")
def unfreeze_top_layers(fn: Callable[[Any, int], None]) -> None:
    """Check `fn(backbone, n)` leaves only the top n transformer layers of a keras-hub BertBackbone trainable."""
    backbone = _backbone(3)
    layers = backbone.transformer_layers
    embedding = backbone.get_layer("token_embedding")
    for n in (3, 1, 0):  # n = 1 after n = 3: each call must re-freeze what the previous one unfroze
        call(fn, backbone, n)
        expect(backbone.trainable, "The backbone itself stays trainable; freeze inside it.",
               "backbone.trainable == True", backbone.trainable,
               "Freezing the backbone as a whole freezes everything inside it, the top layers included.")
        flags = [layer.trainable for layer in layers]
        want = [i >= len(layers) - n for i in range(len(layers))]
        if n == 0 and all(flags):
            hint = ("With n = 0 nothing may train, but layers[-0:] is the whole list (-0 == 0): count the slice's "
                    "start from the front instead.")
        elif n == 1 and flags[:2] == [True, True]:
            hint = "Freeze every layer first, on every call: the previous call (n = 3) left the lower layers trainable."
        else:
            hint = ("Freeze the inside of the backbone, then unfreeze its top n transformer layers: see "
                    f"{_UNFREEZE_SECTION}.")
        expect(flags == want, f"Only the top n transformer layers train (n={n} of {len(layers)}).", want, flags, hint)
        expect(not embedding.trainable, "The embeddings sit below every transformer layer, so they freeze too.",
               "token_embedding.trainable == False", embedding.trainable,
               "The embeddings are layers of the backbone too, outside its transformer_layers.")
        top = sum(len(layer.trainable_weights) for layer in layers[len(layers) - n:])
        expect(len(backbone.trainable_weights) == top, f"Trainable weights are exactly those of the top {n} "
               "transformer layer(s): what the optimizer will update.", top, len(backbone.trainable_weights),
               "Every layer of the backbone counts (pooler and LayerNorms included), not only the transformer ones.")
    deeper = _backbone(4)  # another depth: the number of layers comes from the backbone, not from this check
    for n in (2, 4):
        call(fn, deeper, n)
        expect_unseen(_only_top_train(deeper, n), "on a backbone of another depth, or another n, the trainable "
                      "layers are not exactly its top n transformer layers.",
                      "Count the layers of the backbone you are given.")
    passed("the bottom of the encoder is frozen and its top n layers train (n = 0: nothing).")

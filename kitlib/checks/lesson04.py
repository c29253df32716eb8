"""Lesson 04 (fine-tuning BERT): the warm-up + linear-decay schedule, unfreezing the top transformer layers."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kitlib.checks.core import CheckFailed, call, error_summary, expect, passed

_GRAPH_HINT = ("Inside fit the step is an int64 tensor: cast it first (step = keras.ops.cast(step, 'float32')) and "
               "use keras.ops.where / keras.ops.maximum instead of Python `if`, `max` and `min`, which need a "
               "concrete Python number.")


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


def warmup_linear_decay(fn: Callable[[float, int, int], Any]) -> None:
    """Check `fn(peak, warmup_steps, total_steps)` warms up to peak, then decays to 0, also as fit calls it."""
    import keras

    schedule = call(fn, 1e-3, 10, 110)
    expect(isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule),
           "Return a LearningRateSchedule: the object AdamW calls with its step counter (and saves with the model).",
           "an instance of a keras.optimizers.schedules.LearningRateSchedule subclass", type(schedule).__name__,
           "class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule) with __call__(self, step); "
           "return WarmupLinearDecay(...), not a function.")
    steps = [0, 5, 10, 60, 110, 200]
    want = [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0]
    for how in ("Python int", "eager, step = an int64 tf.Variable", "tf.function, step = an int64 tf.Variable",
                "tf.function with XLA (jit_compile=True), step = an int64 tf.Variable"):
        got = _rates(schedule, steps, how)
        for step, w, g in zip(steps, want, got):
            phase = ("warm-up: rises linearly from 0" if step < 10 else
                     "decay: falls linearly to 0 at total_steps" if step <= 110 else "after total_steps: stays 0")
            expect(abs(g - w) <= 1e-6, f"Learning rate at step {step} ({phase}), step given as a {how}.", w, g,
                   "peak * step / warmup_steps before warmup_steps, then peak * (total_steps - step) / "
                   "(total_steps - warmup_steps), never below 0. Cast `step` to float32 first.")
    passed("warm-up then linear decay, as BERT was trained and fine-tuned, also inside a compiled training step.")


def unfreeze_top_layers(fn: Callable[[Any, int], None]) -> None:
    """Check `fn(backbone, n)` leaves only the top n transformer layers of a keras-hub BertBackbone trainable."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=3, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    layers = backbone.transformer_layers
    embedding = backbone.get_layer("token_embedding")
    for n in (3, 1, 0):  # n = 1 after n = 3: each call must re-freeze what the previous one unfroze
        call(fn, backbone, n)
        expect(backbone.trainable, "The backbone itself stays trainable; freeze inside it.",
               "backbone.trainable == True", backbone.trainable,
               "Setting backbone.trainable = False freezes everything, top layers included.")
        flags = [layer.trainable for layer in layers]
        want = [i >= len(layers) - n for i in range(len(layers))]
        if n == 0 and all(flags):
            hint = ("With n = 0 nothing may train, but layers[-0:] is the whole list (-0 == 0): slice with "
                    "layers[len(layers) - n:].")
        elif n == 1 and flags[:2] == [True, True]:
            hint = "Freeze every layer first, on every call: the previous call (n = 3) left the lower layers trainable."
        else:
            hint = "Freeze all backbone.layers, then set trainable=True on the last n of backbone.transformer_layers."
        expect(flags == want, f"Only the top n transformer layers train (n={n} of {len(layers)}).", want, flags, hint)
        expect(not embedding.trainable, "The embeddings sit below every transformer layer, so they freeze too.",
               "token_embedding.trainable == False", embedding.trainable,
               "Freeze every layer of the backbone first, then unfreeze the top n transformer layers.")
        top = sum(len(layer.trainable_weights) for layer in layers[len(layers) - n:])
        expect(len(backbone.trainable_weights) == top, f"Trainable weights are exactly those of the top {n} "
               "transformer layer(s): what the optimizer will update.", top, len(backbone.trainable_weights),
               "Freeze every layer in backbone.layers (pooler and LayerNorms included), then unfreeze the top n.")
    passed("the bottom of the encoder is frozen and its top n layers train (n = 0: nothing).")

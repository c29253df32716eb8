"""Measuring models for lesson 06: inference latency, size on disk, parameters, one results-table row each.

Latency is the median wall-clock time of `model.predict_on_batch` on a fixed batch, after warm-up calls
(the first call traces the graph and is not what a user waits for at serving time). Size is the bytes
of the model's weights, the payload of whatever file ships it. Saving the model itself would count the
optimizer state too: Keras 3 writes it into `.keras` and `.weights.h5` files of a compiled model
(`include_optimizer=False` is ignored), so Adam's two slots per weight would triple every trained model
but no frozen one.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence


def batch_of(examples: Any, size: int) -> Any:
    """A batch of exactly `size` examples, repeating `examples` when there are fewer (latency needs a full batch)."""
    import numpy as np

    examples = np.asarray(examples)
    if len(examples) == 0:
        raise ValueError("batch_of needs at least one example.")
    reps = -(-size // len(examples))
    batch = np.concatenate([examples] * reps)[:size]
    if batch.dtype.kind in "OSU":  # Keras 3 refuses NumPy string arrays: strings go in as a tf.string tensor
        import tensorflow as tf

        return tf.constant(batch.astype(bytes) if batch.dtype.kind == "U" else batch)
    return batch


def latency_ms(model: Any, batch: Any, repeats: int = 10, warmup: int = 2) -> float:
    """Median milliseconds of one `predict_on_batch` call on `batch`, after `warmup` untimed calls."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1.")
    for _ in range(max(warmup, 0)):
        model.predict_on_batch(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def disk_size_mb(model: Any) -> float:
    """Megabytes (10^6 bytes) of the model's weights at their stored dtypes (no optimizer state)."""
    return sum(int(w.numpy().nbytes) for w in model.weights) / 1e6


def parameters(model: Any) -> int:
    """All parameters of the model, trainable or not (a frozen backbone still has to run)."""
    return int(sum(int(getattr(w, "size", 0) or _numel(w.shape)) for w in model.weights))


def _numel(shape: Sequence[int]) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


def measure(name: str, model: Any, examples: Any, accuracy: float, *, kind: str = "", note: str = "",
            batch_sizes: Sequence[int] = (1, 32), repeats: int = 10, warmup: int = 1) -> dict[str, Any]:
    """One results-table row: accuracy, latency at each batch size, size on disk and parameters of `model`.

    `examples` are raw model inputs (at least one); batches of each size are made from them.
    """
    row: dict[str, Any] = {"model": name, "kind": kind, "note": note, "accuracy": float(accuracy),
                           "params_m": parameters(model) / 1e6, "disk_mb": disk_size_mb(model)}
    for size in batch_sizes:
        row[f"latency_b{size}_ms"] = latency_ms(model, batch_of(examples, size), repeats=repeats, warmup=warmup)
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of `measure` rows, for printing in a notebook."""
    if not rows:
        return "(no rows)"
    latency_keys = [key for key in rows[0] if key.startswith("latency_b")]
    header = f"{'model':40s} {'kind':5s} {'accuracy':>8s} {'params':>8s} {'disk':>8s} " + " ".join(
        f"{key[len('latency_'):-len('_ms')] + ' ms':>9s}" for key in latency_keys)
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['model'][:40]:40s} {row.get('kind', '')[:5]:5s} {row['accuracy']:8.1%} "
                     f"{row['params_m']:7.2f}M {row['disk_mb']:6.1f}MB " +
                     " ".join(f"{row[key]:9.1f}" for key in latency_keys))
    return "\n".join(lines)

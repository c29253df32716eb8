"""Measuring models, the one way lessons 06 and 07 both use: size of the shipped payload, parameters, latency.

Size is the bytes of what ships: a Keras model's weights at their stored dtypes, written as one `.npz`
archive (`payload`; load it back with `model.set_weights(list(np.load(f).values()))`), or a TFLite
flatbuffer's bytes. Saving the model itself would count the optimizer state too: Keras 3 writes it into
the `.keras` and `.weights.h5` files of a compiled model (`include_optimizer=False` is ignored), so Adam's
two slots per weight would triple every trained model but no frozen one.

Latency is the median wall-clock time of a compiled forward pass (`tf.function` of `model(x, training=False)`,
the graph an exported SavedModel signature runs) on a fixed batch, after untimed warm-up calls (the first
one traces the graph: a one-off cost, not what a user waits for). `model.predict_on_batch` would add
Keras' per-call data handling, which a serving runtime does not pay and which would dominate small
models; the median ignores the odd call slowed by another program on shared cores. TFLite interpreters
and other callables are timed the same way by `latency_ms`.
"""

from __future__ import annotations

import gzip
import io
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence


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


def latency_ms(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2) -> float:
    """Median milliseconds of one call of `fn()`, after `warmup` untimed calls (lesson 06)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats}): the median needs one timed call.")
    for _ in range(max(warmup, 0)):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def forward_pass(model: Any) -> Callable[[Any], Any]:
    """The model's compiled inference call: `batch -> NumPy outputs`, traced once per input shape."""
    import tensorflow as tf

    compiled = tf.function(lambda x: model(x, training=False))
    return lambda batch: tf.nest.map_structure(lambda t: t.numpy(), compiled(batch))


def model_latency_ms(model: Any, batch: Any, repeats: int = 10, warmup: int = 2) -> float:
    """Median milliseconds of one compiled forward pass of `model` on `batch` (a batch, e.g. `x[:1]`)."""
    import tensorflow as tf

    forward, batch = forward_pass(model), tf.convert_to_tensor(batch)
    return latency_ms(lambda: forward(batch), repeats=repeats, warmup=warmup)


def payload(model: Any) -> bytes:
    """The model's weights as shipped: one `.npz` archive of its arrays at their stored dtypes, no optimizer state.

    Quantised Keras layers store int8 kernels and float scales, and are counted as such.
    """
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, *model.get_weights())
    return buffer.getvalue()


def size_bytes(path_or_bytes: Path | str | bytes) -> int:
    """Bytes of a payload, a file, or every file under a folder (a SavedModel)."""
    if isinstance(path_or_bytes, bytes):
        return len(path_or_bytes)
    path = Path(path_or_bytes)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def gzip_bytes(path_or_bytes: Path | str | bytes) -> int:
    """Bytes after gzip (level 9) of a payload or a file: what zeros and repeats save on the wire (lesson 07)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def disk_size_mb(model: Any) -> float:
    """Megabytes (10^6 bytes) of the model's shipped payload (its weights, no optimizer state)."""
    return size_bytes(payload(model)) / 1e6


def parameters(model: Any) -> int:
    """All parameters of the model, trainable or not (a frozen backbone still has to run): `model.count_params()`."""
    return int(model.count_params())


def measure(name: str, model: Any, examples: Any, accuracy: float, *, kind: str = "", note: str = "",
            batch_sizes: Sequence[int] = (1, 32), repeats: int = 10, warmup: int = 2) -> dict[str, Any]:
    """One results-table row: accuracy, latency at each batch size, size on disk and parameters of `model`.

    `examples` are raw model inputs (at least one); batches of each size are made from them. A Keras model
    is timed as a compiled forward pass; a model with `predict_proba`, `get_weights` and `count_params` (the
    classical baseline) by calling `predict_proba` on the raw inputs.
    """
    row: dict[str, Any] = {"model": name, "kind": kind, "note": note, "accuracy": float(accuracy),
                           "params_m": parameters(model) / 1e6, "disk_mb": disk_size_mb(model)}
    for size in batch_sizes:
        if hasattr(model, "predict_proba"):  # a scikit-learn model (the classical baseline): its own call on raw inputs
            batch = list(examples) * -(-size // max(len(examples), 1))
            if not batch:
                raise ValueError("batch_of needs at least one example.")
            ms = latency_ms(lambda: model.predict_proba(batch[:size]), repeats=repeats, warmup=warmup)
        else:
            ms = model_latency_ms(model, batch_of(examples, size), repeats=repeats, warmup=warmup)
        row[f"latency_b{size}_ms"] = ms
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of `measure` rows, for printing in a notebook."""
    from kitlib.evaluate import render_table

    if not rows:
        return "(no rows)"
    latency_keys = [key for key in rows[0] if key.startswith("latency_b")]
    header = ["model", "kind", "accuracy", "params", "disk", *(key[len("latency_"):-len("_ms")] + " ms"
                                                               for key in latency_keys)]
    return render_table(header, [[row["model"], row.get("kind", ""), f"{row['accuracy']:.1%}",
                                  f"{row['params_m']:.2f}M", f"{row['disk_mb']:.1f}MB",
                                  *(f"{row[key]:.1f}" for key in latency_keys)] for row in rows])

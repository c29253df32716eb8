"""How fast this machine fine-tunes, against what its cores can do (`python -m kitlib course bench-train`).

The ceiling is a square matmul in a `tf.function`, large enough to keep every core busy, in float32 and in bfloat16.
The rate is MiniLM (the offline pack's 6-layer sentence-transformer, a BERT) fine-tuned in every layer with plain
Keras `train_on_batch`, under each precision policy, on the same shapes. Its FLOPs are `6 x multiplying parameters x
tokens`: the dense kernels only (the embedding tables are looked up, not multiplied, and are about half of MiniLM's
22.7M parameters); attention's own `seq_length^2` products are left out, a few percent at 128 word pieces.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from kitlib import runtime

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the CPU instructions that compute in bfloat16 natively


def bf16_hardware(cpuinfo: Path = CPUINFO) -> str | None:
    """The CPU flag that gives native bfloat16 (AVX512_BF16 or AMX), read from the kernel's list; None without."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:  # not Linux, or no /proc: no claim either way
        return None
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def matmul_gflops(dtype: str = "float32", size: int = 2048, seconds: float = 2.0) -> float:
    """Sustained GFLOP/s of a `size x size` matmul in `dtype` in a `tf.function`, timed for about `seconds`.

    Not XLA-compiled: on CPUs TensorFlow's own kernels (oneDNN) use the native bfloat16 instructions, XLA's do not
    (measured here: bfloat16 at twice float32's rate without XLA, no faster than float32 with it)."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype="float32")
    a = tf.cast(a, dtype)
    step = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x), "float32")))
    step(a).numpy()  # trace
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(a).numpy()
        calls += 1
    return 2 * size**3 * calls / (time.perf_counter() - start) / 1e9


@dataclasses.dataclass(frozen=True)
class Rate:
    """One policy's fine-tuning speed."""

    policy: str
    examples_per_second: float
    flops_per_example: float  # 6 x multiplying parameters x word pieces

    def gflops(self) -> float:
        """The FLOP rate that speed means."""
        return self.examples_per_second * self.flops_per_example / 1e9


def multiplying_parameters(model: object) -> int:
    """Parameters that multiply activations: the dense and attention kernels, not embeddings, biases or norms."""
    return sum(int(v.numpy().size) for v in model.trainable_variables if v.path.endswith("kernel"))


def fine_tuning_rate(policy: str, seq_length: int = 128, batch: int = 16, steps: int = 12, warmup: int = 3) -> Rate:
    """Examples per second of MiniLM fine-tuned in every layer under `policy`, after `warmup` untimed steps."""
    import keras
    import keras_hub
    import numpy as np

    from kitlib.models import heads, textmodels

    if min(seq_length, batch, steps) < 1 or warmup < 0:
        raise ValueError(f"seq_length, batch and steps must be positive and warmup not negative, got "
                         f"{seq_length}, {batch}, {steps}, {warmup}")
    with runtime.precision_scope(policy):
        backbone = keras_hub.models.BertBackbone.from_preset(str(textmodels.minilm_dir()))
        model = textmodels.mean_pooled_classifier(backbone)
        model.compile(keras.optimizers.AdamW(2e-5), loss=heads.loss_for(2))
        rng = np.random.default_rng(0)
        x = {"token_ids": rng.integers(1000, backbone.vocabulary_size, (batch, seq_length)).astype("int32"),
             "padding_mask": np.ones((batch, seq_length), "int32"),
             "segment_ids": np.zeros((batch, seq_length), "int32")}
        y = rng.integers(0, 2, batch)
        for _ in range(warmup):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
        flops = 6 * multiplying_parameters(model) * seq_length
    return Rate(policy, batch * steps / seconds, flops)


def report(seq_length: int = 128, batch: int = 16, steps: int = 12, matmul_size: int = 2048) -> str:
    """The benchmark: both ceilings, then float32 and mixed_bfloat16 fine-tuning side by side, with their ratio."""
    flag = bf16_hardware()
    ceilings = {"float32": matmul_gflops("float32", matmul_size), "bfloat16": matmul_gflops("bfloat16", matmul_size)}
    rates = [fine_tuning_rate(policy, seq_length, batch, steps) for policy in ("float32", "mixed_bfloat16")]
    lines = [f"matmul ceiling ({matmul_size}x{matmul_size}, in a tf.function): float32 {ceilings['float32']:.0f} GFLOP/s, "
             f"bfloat16 {ceilings['bfloat16']:.0f} GFLOP/s; native bfloat16: {flag or 'none found'}",
             f"MiniLM fine-tuned in every layer, {seq_length} word pieces, batch {batch}, {steps} timed steps "
             f"(6 x {rates[0].flops_per_example / 6 / seq_length / 1e6:.1f}M multiplying parameters x tokens):"]
    for rate in rates:
        ceiling = ceilings["float32" if rate.policy == "float32" else "bfloat16"]
        lines.append(f"  {rate.policy:15s} {rate.examples_per_second:6.1f} examples/s, {rate.gflops():4.0f} GFLOP/s "
                     f"({rate.gflops() / ceiling:.0%} of its ceiling)")
    lines.append(f"  mixed_bfloat16 / float32: {rates[1].examples_per_second / rates[0].examples_per_second:.2f}x")
    return "\n".join(lines)

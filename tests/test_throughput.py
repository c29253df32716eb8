"""The fine-tuning benchmark: native bfloat16 read from the CPU's flags, FLOPs counted on the multiplying kernels
only, and both policies measured on the same shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitlib import throughput
from kitlib.__main__ import main


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert throughput.bf16_hardware(info) is None
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert throughput.bf16_hardware(info) == "avx512_bf16"
    info.write_text("flags\t\t: amx_tile amx_bf16\n")
    assert throughput.bf16_hardware(info) == "amx_bf16"
    assert throughput.bf16_hardware(tmp_path / "missing") is None


def test_the_benchmark_compares_both_policies_on_the_same_shapes(kit_env, capsys) -> None:
    assert main(["bench-train", "--seq-length", "16", "--batch", "2", "--steps", "1", "--matmul-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "matmul ceiling (128x128, in a tf.function): float32" in out and "bfloat16" in out
    # MiniLM: 6 layers x (4 attention + 2 feed-forward kernels) of width 384 (1536 inside) plus the head: about
    # 10.6M multiplying parameters, under half of its 22.7M (the embedding tables are not multiplied)
    assert "(6 x 10.6M multiplying parameters x tokens)" in out, out
    assert "  float32 " in out and "  mixed_bfloat16 " in out and "mixed_bfloat16 / float32: " in out


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        throughput.fine_tuning_rate("float32", seq_length=0)

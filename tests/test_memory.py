"""The peak-memory estimate: the gpu profile's large models fit Colab's smallest GPU, a huge setting does not."""

import pytest

from kitlib.models import memory

BERT_BASE = 110_000_000
RESNET50 = 25_600_000


def test_gpu_profile_bert_base_fits_the_smallest_colab_gpu_in_mixed_float16():
    estimate = memory.peak_training_bytes(BERT_BASE, memory.transformer(512, 768, 12, 12), 32, "mixed_float16")
    assert 8e9 < estimate <= memory.COLAB_SMALLEST_GPU_BYTES  # activations dominate: several GB, not a rounding error
    assert "fits a 16 GB GPU" in memory.memory_line("BERT-base", estimate)


def test_gpu_profile_resnet50_fits_the_smallest_colab_gpu():
    for policy in ("mixed_float16", "float32"):
        estimate = memory.peak_training_bytes(RESNET50, memory.resnet50(224), 32, policy)
        assert 1e9 < estimate <= memory.COLAB_SMALLEST_GPU_BYTES, policy


def test_huge_settings_do_not_fit():
    long_and_wide = memory.peak_training_bytes(BERT_BASE, memory.transformer(2048, 768, 12, 12), 64, "mixed_float16")
    assert long_and_wide > memory.COLAB_SMALLEST_GPU_BYTES
    assert "does NOT fit" in memory.memory_line("BERT-base, 2048 tokens", long_and_wide)
    # the same BERT-base setting without mixed precision: float32 activations double, and it no longer fits
    in_float32 = memory.peak_training_bytes(BERT_BASE, memory.transformer(512, 768, 12, 12), 32, "float32")
    assert in_float32 > memory.COLAB_SMALLEST_GPU_BYTES
    big_images = memory.peak_training_bytes(RESNET50, memory.resnet50(512), 256, "mixed_float16")
    assert big_images > memory.COLAB_SMALLEST_GPU_BYTES


def test_the_formula_adds_variables_and_activations():
    stage = memory.Stage(positions=10, width=4, layers=2, factor=3.0)
    assert memory.peak_training_bytes(1000, [stage], 5, "float32") == 1000 * 16 + 5 * 10 * 4 * 2 * 3.0 * 4
    assert memory.peak_training_bytes(1000, [stage], 5, "mixed_bfloat16") == 1000 * 18 + 5 * 10 * 4 * 2 * 3.0 * 2


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="expected float32, mixed_float16 or mixed_bfloat16"):
        memory.peak_training_bytes(BERT_BASE, memory.transformer(512, 768, 12, 12), 32, "float16")
    with pytest.raises(ValueError, match="must be positive"):
        memory.peak_training_bytes(BERT_BASE, memory.transformer(512, 768, 12, 12), 0, "float32")

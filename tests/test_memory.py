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


def test_the_recipes_gpu_runs_fit_the_smallest_colab_gpu_and_say_what_they_estimate():
    text, image = memory.recipe_estimate("text"), memory.recipe_estimate("image")
    assert "BERT-base (12 layers, 768 wide) fine-tuned at 512 word pieces, batch 32, mixed_float16" in text
    assert "fits a 16 GB GPU" in text and "with little room" in text, text  # 13 GB of 16: close to the edge
    assert "ResNet-50 v2 fine-tuned at 224 x 224 pixels, batch 32, mixed_float16" in image
    assert "fits a 16 GB GPU" in image and "little room" not in image, image
    assert "small BERT (4 layers, 512 wide) fine-tuned at 128 word pieces, batch 16, float32" in \
        memory.recipe_estimate("text", "cpu")


def test_the_estimate_follows_the_recipes_sizes(monkeypatch: pytest.MonkeyPatch):
    from kitlib.models import finetuned

    doubled = finetuned.TextRecipe.for_profile

    def bigger(sizes):
        import dataclasses
        recipe = doubled(sizes)
        return dataclasses.replace(recipe, batch_size=recipe.batch_size * 2)

    monkeypatch.setattr(finetuned.TextRecipe, "for_profile", bigger)
    assert "batch 64" in memory.recipe_estimate("text") and "does NOT fit" in memory.recipe_estimate("text")


def test_an_unknown_task_or_profile_is_refused():
    with pytest.raises(ValueError, match="expected 'text' or 'image'"):
        memory.recipe_estimate("audio")
    with pytest.raises(ValueError, match="only the offline stand-ins"):
        memory.recipe_estimate("text", "smoke")


def gpu_knobs(notebook: str) -> dict[str, object]:
    """The gpu values of a lesson's `NAME = cfg.pick(smoke=..., cpu=..., gpu=...)` knobs, read from its source."""
    import ast
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / notebook).read_text(encoding="utf-8"))
    knobs = {}
    for cell in cells["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "attr", None) == "pick"):
                gpu = next(k.value for k in node.value.keywords if k.arg == "gpu")
                knobs[node.targets[0].id] = ast.literal_eval(gpu)
    return knobs


def test_lesson_03s_gpu_pre_training_fits_the_smallest_colab_gpu():
    knobs = gpu_knobs("03_pretraining_mlm.ipynb")
    width, layers = knobs["HIDDEN_DIM"], knobs["NUM_LAYERS"]
    parameters = knobs["VOCAB_SIZE"] * width + layers * 12 * width ** 2  # embeddings + attention and feed-forward
    stages = memory.transformer(knobs["SEQ_LENGTH"], width, layers, knobs["NUM_HEADS"])
    estimate = memory.peak_training_bytes(parameters, stages, knobs["BATCH_SIZE"], "mixed_float16")
    assert 1e8 < estimate <= memory.COLAB_SMALLEST_GPU_BYTES / 2, f"{estimate / 1e9:.1f} GB"

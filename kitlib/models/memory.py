"""A rough estimate of a training run's peak accelerator memory, to check a profile's sizes before paying for a GPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from kitlib import runtime

COLAB_SMALLEST_GPU_BYTES = 16e9  # Colab's smallest GPU, the T4: 16 GB
VARIABLE_BYTES = 16  # per parameter, float32 under every policy: weight 4, gradient 4, AdamW's two moments 8
TRANSFORMER_FACTOR = 17.0  # elements a transformer layer keeps per position and width unit (Korthikanti et al., 2022)
ATTENTION_FACTOR = 2.5  # elements per head and pair of positions: scores, softmax and dropout mask (the same paper)
BOTTLENECK_FACTOR = 5.0  # a ResNet bottleneck: 3 convolutions (w/4, w/4, w) x (conv, batch norm, ReLU) + its input


@dataclasses.dataclass(frozen=True)
class Stage:
    """`layers` blocks of one activation shape, `positions` x `width`, each keeping `factor` times that for backward."""

    positions: int  # tokens of a sequence, or height x width of a feature map
    width: int  # hidden size, or channels
    layers: int
    factor: float

    def elements(self) -> float:
        """Activation elements one example keeps in this stage for the backward pass."""
        return self.positions * self.width * self.layers * self.factor


def transformer(seq_len: int, width: int, layers: int, heads: int) -> list[Stage]:
    """A transformer encoder as one stage: 17 elements per position and width unit, 2.5 per head and position pair."""
    return [Stage(seq_len, width, layers, TRANSFORMER_FACTOR + ATTENTION_FACTOR * heads * seq_len / width)]


def resnet50(image_size: int) -> list[Stage]:
    """ResNet-50's stem and four bottleneck stages (3, 4, 6, 3 blocks; 256 to 2048 channels at 1/4 to 1/32 size)."""
    stem = Stage((image_size // 2) ** 2, 64, 1, BOTTLENECK_FACTOR)  # 7x7 conv, batch norm, ReLU, max pool
    return [stem] + [Stage((image_size // 2 ** (2 + i)) ** 2, 256 * 2 ** i, blocks, BOTTLENECK_FACTOR)
                     for i, blocks in enumerate((3, 4, 6, 3))]


def compute_bytes(policy: str) -> int:
    """Bytes of one activation under a Keras precision policy: 2 for the mixed policies, 4 for float32."""
    if policy not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"unknown precision policy {policy!r}: expected float32, mixed_float16 or mixed_bfloat16")
    return 4 if policy == "float32" else 2


def peak_training_bytes(parameters: int, stages: Sequence[Stage], batch: int, policy: str) -> float:
    """Estimated peak accelerator bytes of training with AdamW: variables, their optimiser state, and activations.

    The formula, all of it an estimate, not a measurement:
    - variables: `parameters x 16` bytes. Keras keeps variables in float32 under every policy (the mixed policies
      compute in 16 bits but store float32): the weight, its gradient and AdamW's two moments, 4 bytes each. The
      mixed policies add a 16-bit copy of each weight, cast on use: `parameters x 2` more.
    - activations: `batch x sum over stages of (positions x width x layers x factor) x compute bytes`, what the
      forward pass keeps for the backward pass. `factor` is a stated rough count per architecture: 17 plus
      `2.5 x heads x seq_len / width` for a transformer layer (Korthikanti et al., "Reducing activation
      recomputation in large transformer models", 2022), 5 for a ResNet bottleneck block (three convolutions,
      each with its batch norm and ReLU outputs, at a quarter, a quarter and all of the block's width).
    Left out: the input batch, cuDNN/XLA workspaces, the allocator's fragmentation and the framework's own
    reserve, so a setting near the GPU's size is at risk even when its estimate fits.
    """
    if parameters <= 0 or batch <= 0:
        raise ValueError(f"parameters and batch must be positive, got {parameters} and {batch}")
    variables = parameters * (VARIABLE_BYTES + (0 if policy == "float32" else 2))
    activations = batch * sum(stage.elements() for stage in stages) * compute_bytes(policy)
    return variables + activations


def memory_line(name: str, estimate: float, limit: float = COLAB_SMALLEST_GPU_BYTES) -> str:
    """One line for a setup report: the estimate, and whether it fits the smallest Colab GPU."""
    verdict = "fits" if estimate <= limit else "does NOT fit"
    room = ", with little room (the estimate leaves out workspaces and fragmentation)" if 0.8 * limit < estimate <= limit else ""
    return f"peak memory estimate: {name} {estimate / 1e9:.1f} GB, {verdict} a {limit / 1e9:.0f} GB GPU{room}"


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A pre-trained backbone's size for the estimate: its parameters, and its stages for an input size."""

    title: str
    parameters: int
    stages: Callable[[int], list[Stage]]  # word pieces per text, or the side of a square image in pixels


# The backbones the recipe fine-tunes online, by TF Hub handle (kitlib.models.hub's registry).
ARCHITECTURES = {
    "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4":
        Architecture("BERT-base (12 layers, 768 wide)", 109_482_240, lambda n: transformer(n, 768, 12, 12)),
    "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-4_H-512_A-8/2":
        Architecture("small BERT (4 layers, 512 wide)", 28_763_648, lambda n: transformer(n, 512, 4, 8)),
    "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5":
        Architecture("ResNet-50 v2", 23_564_800, resnet50),
}


def recipe_estimate(task: str, profile: str = "gpu") -> str:
    """The memory line of the recipe's fine-tuning run (lesson 04's text or lesson 05's image winner) in a profile,
    with the backbone that profile fine-tunes online and the precision `kitlib.setup()` turns on there."""
    from kitlib.models import finetuned, hub  # the recipe and the registry import Keras: only when asked

    if profile not in ("cpu", "gpu"):
        raise ValueError(f"the {profile!r} profile fine-tunes only the offline stand-ins: ask for 'cpu' or 'gpu'")
    sizes = runtime.Sizes(profile)
    if task == "text":
        recipe = finetuned.TextRecipe.for_profile(sizes)
        handle, size, unit = hub.MODELS["bert_en_uncased"].handles[profile]["encoder"], recipe.seq_length, "word pieces"
    elif task == "image":
        recipe = finetuned.ImageRecipe.for_profile(sizes)
        handle, size = hub.MODELS["resnet_v2_50"].handles[profile]["feature_vector"], recipe.image_size
        unit = f"x {recipe.image_size} pixels"
    else:
        raise ValueError(f"unknown task {task!r}: expected 'text' or 'image'")
    policy = runtime.precision_policy(profile, "GPU")
    model = ARCHITECTURES[handle]
    estimate = peak_training_bytes(model.parameters, model.stages(size), recipe.batch_size, policy)
    return memory_line(f"{profile} profile, {model.title} fine-tuned at {size} {unit}, batch {recipe.batch_size}, "
                       f"{policy}:", estimate)

"""Plots the lessons share: training curves, confusion matrices, embedding maps, the pipeline picture, image grids,
and the mechanism figures: masked-LM inputs and attention masks (lesson 03), BERT's packed windows, which layers train and how far
they moved (04), which backbone variables fine-tuning unfreezes (05), weights before and after pruning (07), gradients
before and after an all-reduce (10)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb


def _history_dict(history: Any) -> Mapping[str, Sequence[float]]:
    """Accept a Keras History or a plain dict of metric lists."""
    return history.history if hasattr(history, "history") else history


def plot_history(histories: Any, metrics: Sequence[str] = ("loss", "accuracy")) -> None:
    """Training and validation curves per metric; pass one History or a {name: History} dict."""
    if hasattr(histories, "history") or all(isinstance(v, (list, tuple, np.ndarray)) for v in histories.values()):
        histories = {"": histories}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, (name, history) in enumerate(histories.items()):
            values = _history_dict(history)
            label = f"{name} " if name else ""
            epochs = np.arange(1, len(values[metric]) + 1)
            ax.plot(epochs, values[metric], "-o", color=f"C{i}", label=f"{label}train")
            if f"val_{metric}" in values:
                ax.plot(epochs, values[f"val_{metric}"], "--s", color=f"C{i}", label=f"{label}validation")
        ax.set(title=metric, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> None:
    """A confusion matrix with counts and row percentages in each cell; cells and fonts shrink for many classes."""
    n = len(class_names)
    cell = 1.6 if n <= 4 else max(0.55, 7.5 / n)  # 10 classes: a 10x10 grid of about 9 inches
    fig, ax = plt.subplots(figsize=(cell * n + 2, cell * 0.9 * n + 1.5))
    ax.imshow(matrix, cmap="Blues")
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    fontsize = 10 if n <= 4 else 7.5
    for (i, j), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        ax.text(j, i, f"{count}\n{count / rows[i, 0]:.0%}", ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")
    ticks = np.arange(n)
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if n > 4:
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    fig.tight_layout()


def plot_embedding_2d(
    points: np.ndarray, words: Sequence[str], colors: Sequence[float] | None = None, title: str = ""
) -> None:
    """Words placed at their 2-D coordinates, optionally coloured by a score (e.g. sentiment)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=colors, cmap="coolwarm", s=12)
    for (x, y), word in zip(points, words):
        ax.annotate(word, (x, y), fontsize=8, alpha=0.8, xytext=(2, 2), textcoords="offset points")
    if colors is not None:
        fig.colorbar(scatter, ax=ax, label="score")
    ax.set(title=title or "embedding space (first two principal components)", xticks=[], yticks=[])
    fig.tight_layout()


def plot_pipeline(stages: Sequence[tuple[str, str]]) -> None:
    """Boxes joined by arrows: each stage a (title, one-line description) pair."""
    fig, ax = plt.subplots(figsize=(2.6 * len(stages), 2.2))
    for i, (name, text) in enumerate(stages):
        ax.add_patch(plt.Rectangle((i * 2.6, 0), 2.1, 1.4, color=f"C{i}", alpha=0.25))
        ax.text(i * 2.6 + 1.05, 1.0, name, ha="center", va="center", fontsize=12, weight="bold")
        ax.text(i * 2.6 + 1.05, 0.45, text, ha="center", va="center", fontsize=8, wrap=True)
        if i:
            ax.annotate("", xy=(i * 2.6, 0.7), xytext=(i * 2.6 - 0.5, 0.7),
                        arrowprops=dict(arrowstyle="->", lw=2))
    ax.set(xlim=(-0.1, 2.6 * len(stages) - 0.4), ylim=(-0.1, 1.5))
    ax.axis("off")
    fig.tight_layout()


MASKING_COLOURS = {"[MASK]": "tab:orange", "random": "tab:red", "kept": "tab:green"}  # what became of a picked piece


def masking_kind(original: str, shown: str, selected: bool, mask_token: str = "[MASK]") -> str | None:
    """What masking did to one word piece: None (not picked), "[MASK]", "random" (another piece) or "kept"."""
    if not selected:
        return None
    return "[MASK]" if shown == mask_token else "kept" if shown == original else "random"


def plot_masking(original: Sequence[Sequence[str]], shown: Sequence[Sequence[str]],
                 selected: Sequence[Sequence[bool]], title: str = "") -> None:
    """One row per text: the word pieces the encoder sees, the picked ones coloured by what became of them, and
    under each picked piece the original it must predict (the masked-LM target)."""
    width = max(len(row) for row in original)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.95 * width), 1.15 * len(original) + 0.6))
    for r, (before, after, picked) in enumerate(zip(original, shown, selected)):
        y = -1.15 * r
        for c, (word, seen, chosen) in enumerate(zip(before, after, picked)):
            kind = masking_kind(word, seen, chosen)
            ax.add_patch(plt.Rectangle((c, y), 0.92, 0.5, color=MASKING_COLOURS.get(kind, "0.9"),
                                       alpha=0.45 if kind else 1.0))
            ax.text(c + 0.46, y + 0.25, seen, ha="center", va="center", fontsize=7)
            if kind:
                ax.text(c + 0.46, y - 0.2, word, ha="center", va="center", fontsize=7, style="italic")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour, alpha=0.45) for colour in MASKING_COLOURS.values()]
    labels = ["picked: [MASK] (80%)", "picked: a random piece (10%)", "picked: kept as it is (10%)"]
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    ax.set(xlim=(-0.1, width), ylim=(-1.15 * len(original) + 0.5, 0.6))
    ax.set_title(title or "what the encoder sees; in italics under a picked piece, the target it must predict",
                 fontsize=9, pad=24)
    ax.axis("off")
    fig.tight_layout()


def plot_attention_masks(masks: Mapping[str, np.ndarray]) -> None:
    """Attention masks side by side: row i is a position, a filled column j a position it may attend to."""
    fig, axes = plt.subplots(1, len(masks), figsize=(3.2 * len(masks), 3.2), squeeze=False)
    for ax, (name, mask) in zip(axes[0], masks.items()):
        ax.imshow(np.asarray(mask, dtype=float), cmap="Blues", vmin=0, vmax=1.4)
        ax.set(title=name, xlabel="may attend to position", ylabel="position", xticks=range(len(mask)),
               yticks=range(len(mask)))
    fig.tight_layout()


def plot_weight_histograms(weights: Mapping[str, np.ndarray], bins: int = 81) -> None:
    """The values of each set of weights on shared bins, counts on a log scale; the legend gives each one's zeros."""
    flat = {name: np.ravel(np.asarray(w, dtype="float64")) for name, w in weights.items()}
    edge = max(float(np.abs(w).max()) for w in flat.values()) or 1.0
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, w in flat.items():
        ax.hist(w, bins=np.linspace(-edge, edge, bins), histtype="step", linewidth=1.5,
                label=f"{name}: {np.mean(w == 0):.0%} exact zeros")
    ax.set(yscale="log", xlabel="weight value", ylabel="weights (log scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()


def plot_all_reduce(local: Mapping[str, np.ndarray], averaged: Mapping[str, np.ndarray], shown: int = 16) -> None:
    """Each replica's gradient before the all-reduce and after it, first `shown` components, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
    for ax, (title, gradients) in zip(axes, (("before the all-reduce: each replica's own share", local),
                                             ("after it: the mean, the same on every replica", averaged))):
        width = 0.8 / len(gradients)
        for i, (name, gradient) in enumerate(gradients.items()):
            values = np.ravel(np.asarray(gradient))[:shown]
            ax.bar(np.arange(len(values)) + (i - (len(gradients) - 1) / 2) * width, values, width, label=name)
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set(title=title, xlabel="gradient component")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("gradient")
    fig.tight_layout()


def layer_rows(model: Any) -> list[Any]:
    """The layers of `model` that hold weights, input side first; a nested model (a backbone) by its own layers."""
    rows: list[Any] = []
    for layer in model.layers:
        if getattr(layer, "layers", None) and layer.weights:
            rows += [inner for inner in layer.layers if inner.weights]
        elif layer.weights:
            rows.append(layer)
    return rows


def _size(weights: Sequence[Any]) -> int:
    """The number of numbers in `weights`."""
    return sum(int(np.prod(w.shape)) for w in weights)


def plot_trainable_layers(models: Mapping[str, Any]) -> None:
    """One column per model, its layers (`layer_rows`) from the input up, filled where they train."""
    rows = {name: layer_rows(model) for name, model in models.items()}
    height = max(len(layers) for layers in rows.values())
    fig, ax = plt.subplots(figsize=(2.2 * len(models) + 2.2, 0.3 * height + 1.4))
    for c, (name, model) in enumerate(models.items()):
        trainable = {id(v) for v in model.trainable_weights}
        for r, layer in enumerate(rows[name]):
            trains = any(id(v) in trainable for v in layer.weights)
            ax.add_patch(plt.Rectangle((c, r), 0.9, 0.8, color="tab:blue" if trains else "0.85"))
            if c == 0:
                ax.text(-0.08, r + 0.4, f"{layer.name} ({_size(layer.weights):,})", ha="right", va="center", fontsize=7)
        share = _size(model.trainable_weights) / max(_size(model.weights), 1)
        ax.text(c + 0.45, height + 0.3, f"{name}\n{share:.2%} of weights train", ha="center", fontsize=8)
    ax.set(xlim=(-2.2, len(models)), ylim=(-0.2, height + 1.3))
    ax.set_title("blue: trains; grey: frozen", fontsize=8, loc="right")
    ax.axis("off")
    fig.tight_layout()


def weight_snapshot(model: Any) -> dict[str, list[np.ndarray]]:
    """A copy of the weights of each of `model`'s layers (`layer_rows`), by layer name."""
    return {layer.name: [np.array(w) for w in layer.weights] for layer in layer_rows(model)}


def plot_weight_change(before: Mapping[str, Sequence[np.ndarray]], model: Any) -> dict[str, float]:
    """How far each layer moved since `before` (`weight_snapshot`): |after - before| / |before|, drawn as bars
    from the input up; returns them by layer name."""
    change = {}
    for layer in layer_rows(model):
        old = np.concatenate([np.ravel(w) for w in before[layer.name]])
        new = np.concatenate([np.ravel(np.array(w)) for w in layer.weights])
        change[layer.name] = float(np.linalg.norm(new - old) / max(np.linalg.norm(old), 1e-12))
    fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(change) + 1.0))
    ax.barh(range(len(change)), [100 * v for v in change.values()], color="tab:blue")
    ax.set(yticks=range(len(change)), yticklabels=list(change), xlabel="change of the layer's weights (% of their norm)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return change


WINDOW_COLOURS = {"[CLS] / [SEP]": "black", "head": "tab:blue", "tail": "tab:orange", "whole text": "tab:green",
                  "padding": "0.9"}  # what a packed position holds


def plot_bert_windows(input_mask: np.ndarray, lengths: Sequence[int], head_tokens: int) -> None:
    """One row per text: what each position of its packed window holds ([CLS] / [SEP], the head and tail of a text
    longer than the window, or the whole of a shorter one, then padding), from its `input_mask` and its length in
    word pieces before packing."""
    mask = np.asarray(input_mask)
    width = mask.shape[1]
    image = np.zeros((len(mask), width, 3))
    labels = []
    for i, (row, length) in enumerate(zip(mask, lengths)):
        real, cut = int(row.sum()), int(length) > width - 2
        kinds = ["padding"] * width
        for j in range(1, real - 1):
            kinds[j] = ("head" if j <= head_tokens else "tail") if cut else "whole text"
        kinds[0] = kinds[real - 1] = "[CLS] / [SEP]"
        image[i] = [to_rgb(WINDOW_COLOURS[kind]) for kind in kinds]
        labels.append(f"{int(length):,} pieces" + (", cut" if cut else ""))
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(mask) + 1.2))
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set(yticks=range(len(mask)), yticklabels=labels, xlabel="position in the packed window")
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=colour) for colour in WINDOW_COLOURS.values()], list(WINDOW_COLOURS),
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8, frameon=False)
    fig.tight_layout()


VARIABLE_COLOURS = {"trains": "tab:blue", "frozen": "0.85", "never trains (statistics)": "tab:orange"}


def plot_variable_strips(weights: Sequence[Any], strips: Mapping[str, Sequence[Any]], fixed: Sequence[Any] = ()) -> None:
    """One strip per step: every variable of `weights` in order (input to output), blue where that step trains it,
    orange for variables no step trains (`fixed`: BatchNorm's moving statistics), grey where it is frozen."""
    fixed_ids = {id(v) for v in fixed}
    image = np.zeros((len(strips), len(weights), 3))
    for r, training in enumerate(strips.values()):
        ids = {id(v) for v in training}
        image[r] = [to_rgb(VARIABLE_COLOURS["never trains (statistics)" if id(v) in fixed_ids else
                                            "trains" if id(v) in ids else "frozen"]) for v in weights]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(strips) + 1.3))
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set(yticks=range(len(strips)), yticklabels=list(strips), xlabel="the backbone's variables, input to output")
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in VARIABLE_COLOURS.values()], list(VARIABLE_COLOURS),
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()


def show_images(images: Any, titles: list[str] | None = None, cols: int = 8, size: float = 1.6,
                suptitle: str = "") -> None:
    """A grid of images (uint8 or [0, 1] floats) with optional titles (lesson 05)."""
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        print("(no images to show)")
        return
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.ravel(), images)):
        ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)


def plot_label_efficiency(
    runs: Mapping[str, Mapping[int, Sequence[float]]], references: Mapping[str, float] | None = None, title: str = ""
) -> None:
    """Test accuracy against labels per encoder: the mean of its runs, error bars of one standard deviation.

    `runs` maps an encoder's name to {number of labels: accuracies of its runs}; a budget with one run
    gets no error bar. `references` are drawn as horizontal lines (other lessons, the majority class).
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, by_labels) in enumerate(runs.items()):
        labels = sorted(by_labels)
        means = [np.mean(by_labels[n]) for n in labels]
        spreads = [np.std(by_labels[n], ddof=1) if len(by_labels[n]) > 1 else 0.0 for n in labels]
        ax.errorbar(labels, means, yerr=spreads, marker="os^dv"[i % 5], capsize=4, color=f"C{i}", label=name)
    for j, (name, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{len(runs) + j}", linestyle=":", label=name)
    ax.set(xscale="log", xlabel="labelled training examples (log scale)", ylabel="test accuracy",
           title=title or "label efficiency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()

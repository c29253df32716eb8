"""The shared plots draw what they promise."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgb
import numpy as np
import pytest

import kitlib
from kitlib import plots


def test_history_plots_train_and_validation_per_metric() -> None:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    kitlib.plot_history(history)
    axes = plt.gcf().axes
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in axes] == [2, 2]
    plt.close("all")


def test_history_compares_several_runs() -> None:
    kitlib.plot_history({"scratch": {"loss": [1, 0.9]}, "pretrained": {"loss": [0.6, 0.4]}}, metrics=["loss"])
    labels = [line.get_label() for line in plt.gcf().axes[0].lines]
    assert labels == ["scratch train", "pretrained train"]
    plt.close("all")


def test_confusion_matrix_annotates_counts_and_rates() -> None:
    kitlib.plot_confusion_matrix(np.array([[8, 2], [1, 9]]), ["neg", "pos"])
    texts = [t.get_text() for t in plt.gcf().axes[0].texts]
    assert texts == ["8\n80%", "2\n20%", "1\n10%", "9\n90%"]
    plt.close("all")


def test_ten_class_confusion_matrix_is_readable() -> None:
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    matrix = np.diag(np.arange(10, 20)) + 1
    kitlib.plot_confusion_matrix(matrix, names)
    fig, ax = plt.gcf(), plt.gcf().axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names == [t.get_text() for t in ax.get_yticklabels()]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 100 and texts[0] == "11\n55%" and texts[1] == "1\n5%"
    width, height = fig.get_size_inches()
    assert width <= 11 and height <= 10, "a 10x10 matrix must fit a notebook page"
    assert ax.get_xticklabels()[0].get_rotation() == 45
    plt.close("all")


def test_embedding_and_pipeline_pictures() -> None:
    kitlib.plot_embedding_2d(np.array([[0, 0], [1, 1]]), ["good", "bad"], colors=[0.9, 0.1])
    assert [t.get_text() for t in plt.gcf().axes[0].texts] == ["good", "bad"]
    kitlib.plot_pipeline([("data", "text"), ("pre-train", "mask"), ("fine-tune", "labels")])
    assert len(plt.gcf().axes[0].patches) == 3
    plt.close("all")


def test_image_grid_shows_each_image_with_its_title(capsys) -> None:
    images = np.zeros((5, 4, 4, 3), np.uint8)
    kitlib.show_images(images, ["a", "b", "c", "d", "e"], cols=3, suptitle="five")
    axes = plt.gcf().axes
    assert len(axes) == 6 and [ax.get_title() for ax in axes if ax.images] == ["a", "b", "c", "d", "e"]
    assert plt.gcf().texts[0].get_text() == "five"
    plt.close("all")
    kitlib.show_images(images[:0])
    assert "(no images to show)" in capsys.readouterr().out


def test_label_efficiency_plots_means_with_error_bars_and_reference_lines() -> None:
    runs = {"random init": {40: [0.5, 0.6, 0.7], 4000: [0.8]}, "pre-trained": {40: [0.7, 0.7, 0.7], 4000: [0.9]}}
    kitlib.plot_label_efficiency(runs, references={"lesson 02": 0.86})
    ax = plt.gcf().axes[0]
    random_init = ax.containers[0]
    assert list(random_init.lines[0].get_ydata()) == [0.6, 0.8]  # the mean of the runs at each budget
    bars = random_init.lines[2][0].get_segments()
    assert np.allclose([bars[0][0][1], bars[0][1][1]], [0.5, 0.7])  # one standard deviation (ddof=1) either side
    assert np.allclose(bars[1][:, 1], [0.8, 0.8])  # a single run has no spread
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"] == [0.86]
    assert ax.get_xscale() == "log"
    plt.close("all")


def test_masking_figure_colours_each_picked_piece_by_what_became_of_it() -> None:
    assert [kitlib.masking_kind("film", shown, picked) for shown, picked in
            [("film", False), ("[MASK]", True), ("plot", True), ("film", True)]] == [None, "[MASK]", "random", "kept"]
    assert kitlib.masking_kind(7, 4, True, mask_token=4) == "[MASK]", "ids work as well as strings"
    original = [["the", "film", "was", "dull"], ["a", "fine", "cast"]]
    shown = [["the", "[MASK]", "was", "grand"], ["a", "fine", "cast"]]
    picked = [[False, True, False, True], [False, False, True]]
    kitlib.plot_masking(original, shown, picked)
    ax = plt.gcf().axes[0]
    colours = [patch.get_facecolor()[:3] for patch in ax.patches]
    assert colours.count(to_rgb("tab:orange")) == 1 and colours.count(to_rgb("tab:red")) == 1
    assert colours.count(to_rgb("tab:green")) == 1, "the kept piece of the second text"
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("film") == 1 and "dull" in texts and texts.count("cast") == 2, "targets under picked pieces"
    plt.close("all")


def test_attention_masks_are_drawn_as_given() -> None:
    causal = np.tril(np.ones((4, 4), dtype=bool))
    kitlib.plot_attention_masks({"bidirectional": np.ones((4, 4)), "causal": causal})
    axes = plt.gcf().axes
    assert [ax.get_title() for ax in axes] == ["bidirectional", "causal"]
    assert np.array_equal(axes[1].images[0].get_array(), causal.astype(float))
    plt.close("all")


def test_weight_histograms_share_bins_and_count_the_zeros() -> None:
    dense = np.linspace(-1, 1, 101)
    pruned = np.where(np.abs(dense) < 0.5, 0.0, dense)
    kitlib.plot_weight_histograms({"before": dense, "pruned": pruned})
    ax = plt.gcf().axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before: 1% exact zeros", "pruned: 49% exact zeros"]
    assert ax.get_yscale() == "log" and len(ax.patches) == 2
    plt.close("all")


def test_all_reduce_figure_draws_every_replica_before_and_after() -> None:
    local = {"CPU:0": np.arange(20.0), "CPU:1": -np.arange(20.0)}
    kitlib.plot_all_reduce(local, {name: np.zeros(20) for name in local}, shown=8)
    before, after = plt.gcf().axes
    heights = [bar.get_height() for bar in before.patches]
    assert len(heights) == 16 and heights[:8] == list(range(8)) and heights[8:] == [-h for h in range(8)]
    assert all(bar.get_height() == 0 for bar in after.patches) and len(after.patches) == 16
    plt.close("all")


def _nested(seed: int):
    """A model with a nested backbone of two Dense layers and a head, as lesson 04's classifiers are built."""
    import keras

    backbone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="low"), keras.layers.Dense(4, name="high")],
                                name="backbone")
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs))), backbone


def test_trainable_layers_are_read_from_the_model_itself() -> None:
    frozen, backbone = _nested(0)
    backbone.trainable = False
    top, top_backbone = _nested(1)
    top_backbone.get_layer("low").trainable = False
    assert [layer.name for layer in plots.layer_rows(top)] == ["low", "high", "head"]
    kitlib.plot_trainable_layers({"frozen": frozen, "top": top})
    ax = plt.gcf().axes[0]
    blue = [patch.get_facecolor()[:3] == to_rgb("tab:blue") for patch in ax.patches]
    assert blue == [False, False, True, False, True, True], "frozen: only the head; top: high and the head"
    shares = [t.get_text() for t in ax.texts][-2:]
    assert shares == ["frozen\n12.20% of weights train", "top\n60.98% of weights train"], "5 and 25 of 16 + 20 + 5"
    plt.close("all")


def test_weight_change_is_relative_per_layer() -> None:
    model, backbone = _nested(0)
    before = kitlib.weight_snapshot(model)
    kernel, bias = backbone.get_layer("high").get_weights()
    backbone.get_layer("high").set_weights([2 * kernel, bias])
    change = kitlib.plot_weight_change(before, model)
    assert change == {"low": 0.0, "head": 0.0, "high": pytest.approx(1.0)} and list(change) == ["low", "high", "head"]
    assert len(plt.gcf().axes[0].patches) == 3
    plt.close("all")


def test_bert_windows_show_head_tail_and_padding_per_text() -> None:
    mask = np.array([[1] * 8, [1] * 5 + [0] * 3])
    kitlib.plot_bert_windows(mask, [20, 3], head_tokens=2)
    ax = plt.gcf().axes[0]
    image = ax.images[0].get_array()
    colour = {name: to_rgb(c) for name, c in plots.WINDOW_COLOURS.items()}
    assert [tuple(image[0, j]) for j in range(8)] == [colour[k] for k in ["[CLS] / [SEP]", "head", "head", "tail", "tail",
                                                                          "tail", "tail", "[CLS] / [SEP]"]]
    assert [tuple(image[1, j]) for j in range(8)] == [colour[k] for k in ["[CLS] / [SEP]", "whole text", "whole text",
                                                                          "whole text", "[CLS] / [SEP]", "padding",
                                                                          "padding", "padding"]]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["20 pieces, cut", "3 pieces"]
    plt.close("all")


def test_variable_strips_colour_each_variable_by_what_the_step_does_with_it() -> None:
    weights = [np.zeros(1) for _ in range(5)]
    kitlib.plot_variable_strips(weights, {"frozen": [], "top 2": weights[3:]}, fixed=[weights[1]])
    image = plt.gcf().axes[0].images[0].get_array()
    colour = {name: to_rgb(c) for name, c in plots.VARIABLE_COLOURS.items()}
    frozen, trains, stats = colour["frozen"], colour["trains"], colour["never trains (statistics)"]
    assert [tuple(x) for x in image[0]] == [frozen, stats, frozen, frozen, frozen]
    assert [tuple(x) for x in image[1]] == [frozen, stats, frozen, trains, trains]
    plt.close("all")

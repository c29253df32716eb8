"""Exercise checks, lesson by lesson: the reference answer passes, the unwritten stub says "not written yet", and
plausible wrong answers (those found by working the student copies among them) fail with a message naming the
mistake. Every test runs under each precision policy the kit supports (float32, and the mixed policies a GPU or TPU
turns on): a check that compares in float32 would reject a right answer under mixed precision, and one that
loosens its tolerance for rounding must still reject every wrong answer."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

from kitlib import checks
from kitlib.checks import lesson11

pytestmark = pytest.mark.usefixtures("policy")


def stub(*args, **kwargs):
    raise NotImplementedError()


def verdicts(check: Callable, right: Callable, wrongs: list[tuple[Callable, str]], *extra: Any,
             capsys: pytest.CaptureFixture[str]) -> None:
    """`right` passes, the stub and every wrong answer fail, each with a message matching its pattern."""
    check(right, *extra)
    assert "Check passed" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="is not written yet"):
        check(stub, *extra)
    for wrong, message in wrongs:
        with pytest.raises(checks.CheckFailed, match=message):
            check(wrong, *extra)
            pytest.fail(f"{wrong.__name__} passed")


# --- Lesson 01 ------------------------------------------------------------------------------------------------


def neighbours(word, vectors, vocabulary, k):
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = vocabulary.index(word)
    return [vocabulary[i] for i in np.argsort(-(unit @ unit[index])) if i != index][:k]


def neighbours_by_euclid(word, vectors, vocabulary, k):
    index = vocabulary.index(word)
    return [vocabulary[i] for i in np.argsort(np.linalg.norm(vectors - vectors[index], axis=1)) if i != index][:k]


def neighbours_by_dot(word, vectors, vocabulary, k):
    index = vocabulary.index(word)
    return [vocabulary[i] for i in np.argsort(-(vectors @ vectors[index])) if i != index][:k]


def neighbours_with_itself(word, vectors, vocabulary, k):
    return [word] + neighbours(word, vectors, vocabulary, k)[: k - 1]


def neighbours_least_similar_first(word, vectors, vocabulary, k):
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = vocabulary.index(word)
    return [vocabulary[i] for i in np.argsort(unit @ unit[index]) if i != index][:k]


def neighbours_normalising_in_place(word, vectors, vocabulary, k):
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return neighbours(word, vectors, vocabulary, k)


def test_nearest_neighbours(capsys) -> None:
    verdicts(checks.nearest_neighbours, neighbours, [
        (neighbours_by_euclid, "ranking by Euclidean distance"),
        (neighbours_by_dot, "raw dot product, which favours long vectors"),
        (neighbours_with_itself, "its own neighbour"),
        (neighbours_least_similar_first, "highest first"),
        (neighbours_normalising_in_place, "changed its input `vectors` in place"),
    ], capsys=capsys)


def write_ok(folder: Path, vectors, vocabulary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vectors.tsv").write_text("".join("\t".join(map(str, v)) + "\n" for v in vectors[1:]))
    (folder / "metadata.tsv").write_text("".join(w + "\n" for w in vocabulary[1:]))


def write_with_padding(folder: Path, vectors, vocabulary) -> None:
    write_ok(folder, np.concatenate([vectors[:1], vectors]), [""] + vocabulary)


def write_with_header(folder: Path, vectors, vocabulary) -> None:
    write_ok(folder, vectors, vocabulary)
    (folder / "metadata.tsv").write_text("word\n" + "".join(w + "\n" for w in vocabulary[1:]))


def write_with_spaces(folder: Path, vectors, vocabulary) -> None:
    write_ok(folder, vectors, vocabulary)
    (folder / "vectors.tsv").write_text("".join(" ".join(map(str, v)) + "\n" for v in vectors[1:]))


def write_without_mkdir(folder: Path, vectors, vocabulary) -> None:
    (folder / "vectors.tsv").write_text("".join("\t".join(map(str, v)) + "\n" for v in vectors[1:]))


def test_projector_export(capsys) -> None:
    verdicts(checks.projector_export, write_ok, [
        (write_with_padding, "without the padding token"),
        (write_with_header, "no header line"),
        (write_with_spaces, "tab-separated"),
        (write_without_mkdir, "does not exist yet"),
        (lambda folder, v, w: folder.mkdir(), "vectors.tsv should be written"),
    ], capsys=capsys)


# --- Lesson 02 ------------------------------------------------------------------------------------------------


def test_lstm_model_check(capsys, policy: str) -> None:
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorizer.adapt(["a wonderful film", "a dull film"])

    def build(mask: bool = True, head: str = "sigmoid", bidirectional: bool = True) -> keras.Model:
        lstm = keras.layers.LSTM(3)
        return keras.Sequential([
            keras.Input(shape=(), dtype="string"), vectorizer,
            keras.layers.Embedding(50, 4, mask_zero=mask),
            keras.layers.Bidirectional(lstm) if bidirectional else lstm,
            keras.layers.Dense(1, activation=head),
        ])

    checks.lstm_model(build(), ["good", "bad film"])
    assert "Check passed" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="`build_lstm_model` is not written yet"):
        def build_lstm_model():
            raise NotImplementedError()
        checks.call(build_lstm_model)
    for model, message in [(build(mask=False), "mask_zero=True"), (build(head="linear"), "activation='sigmoid'"),
                           (build(bidirectional=False), "bidirectional LSTM")]:
        with pytest.raises(checks.CheckFailed, match=message):
            checks.lstm_model(model, ["good", "bad film"])


def mistakes(y_true, probs, k):
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    return wrong[np.argsort(-np.abs(probs[wrong] - 0.5), kind="stable")][:k]


def mistakes_positions_within_the_mistakes(y_true, probs, k):
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    return np.argsort(-np.abs(probs[wrong] - 0.5), kind="stable")[:k]


def mistakes_by_probability(y_true, probs, k):
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    return wrong[np.argsort(-probs[wrong], kind="stable")][:k]


def mistakes_padded_with_correct_ones(y_true, probs, k):
    return np.argsort(-np.abs(probs - 0.5) * ((probs > 0.5) != y_true), kind="stable")[:k]


def mistakes_in_place(y_true, probs, k):
    order = mistakes(y_true, probs, k)
    probs.sort()
    return order


def test_most_confident_mistakes(capsys) -> None:
    verdicts(checks.most_confident_mistakes, mistakes, [
        (mistakes_positions_within_the_mistakes, "positions within the list of mistakes, not indices into y_true"),
        (mistakes_by_probability, "Confidence is the distance from 0.5"),
        (mistakes_padded_with_correct_ones, "never pad with correct ones"),
        (lambda y, p, k: np.flatnonzero((p > 0.5) != y)[:k], "most confident first"),
        (mistakes_in_place, "changed its input `probs` in place"),
    ], capsys=capsys)


# --- Lesson 03 ------------------------------------------------------------------------------------------------


def mlm_targets(ids, selected, mask_id):
    return np.where(selected, mask_id, ids), np.where(selected, ids, 0), selected.astype("float32")


def mlm_targets_masking_the_callers_array(token_ids, selected, mask_id):
    inputs = token_ids
    inputs[selected] = mask_id
    labels = np.where(selected, token_ids, 0)
    return inputs, labels, selected.astype("float32")


def mlm_targets_masking_after_the_labels(token_ids, selected, mask_id):
    labels = np.where(selected, token_ids, 0)
    inputs = token_ids
    inputs[selected] = mask_id
    return inputs, labels, selected.astype("float32")


def mlm_targets_labels_everywhere(token_ids, selected, mask_id):
    return np.where(selected, mask_id, token_ids), token_ids.copy(), selected.astype("float32")


def mlm_targets_all_weights(token_ids, selected, mask_id):
    return np.where(selected, mask_id, token_ids), np.where(selected, token_ids, 0), np.ones(token_ids.shape)


def test_mlm_targets(capsys) -> None:
    verdicts(checks.mlm_targets, mlm_targets, [
        (mlm_targets_masking_the_callers_array, "changed its input `token_ids` in place"),
        (mlm_targets_masking_after_the_labels, "changed its input `token_ids` in place"),
        (mlm_targets_labels_everywhere, "unselected positions must be 0"),
        (mlm_targets_all_weights, "masked positions only"),
    ], capsys=capsys)


def test_causal_mask(capsys) -> None:
    verdicts(checks.causal_mask, lambda n: np.tril(np.ones((n, n), bool)), [
        (lambda n: np.triu(np.ones((n, n), bool)), "transpose"),
        (lambda n: np.tril(np.ones((n, n), bool), -1), "Include the diagonal"),
        (lambda n: np.ones((n, n), bool), "Lower-triangular"),
        (lambda n: np.tril(np.ones((4, 4), bool)), "Build a square"),
    ], capsys=capsys)


# --- Lesson 04 ------------------------------------------------------------------------------------------------


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak, warmup, total, clamp=True):
        self.peak, self.warmup, self.total, self.clamp = peak, warmup, total, clamp

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        up = self.peak * step / self.warmup
        down = self.peak * (self.total - step) / (self.total - self.warmup)
        return keras.ops.where(step < self.warmup, up, keras.ops.maximum(0.0, down) if self.clamp else down)


class PythonIfSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Right on Python ints; `model.fit` then fails (int64 steps, symbolic tensors)."""

    def __init__(self, peak, warmup, total):
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step):
        if step < self.warmup:
            return self.peak * step / self.warmup
        return max(0.0, self.peak * (self.total - step) / (self.total - self.warmup))


def schedule_as_a_lambda(peak, warmup, total):
    return lambda step: WarmupLinearDecay(peak, warmup, total)(step)


def test_warmup_linear_decay(capsys) -> None:
    verdicts(checks.warmup_linear_decay, WarmupLinearDecay, [
        (PythonIfSchedule, "as the optimizer calls it"),
        (schedule_as_a_lambda, "Return a LearningRateSchedule"),
        (lambda peak, warmup, total: keras.optimizers.schedules.PolynomialDecay(peak, total, 0.0), "warm-up"),
        (lambda peak, warmup, total: WarmupLinearDecay(peak, warmup, total, clamp=False), "after total_steps"),
    ], capsys=capsys)


def unfreeze(backbone, n):
    for layer in backbone.layers:
        layer.trainable = False
    for layer in backbone.transformer_layers[len(backbone.transformer_layers) - n:]:
        layer.trainable = True


def unfreeze_minus_n(backbone, n):
    for layer in backbone.layers:
        layer.trainable = False
    for layer in backbone.transformer_layers[-n:]:
        layer.trainable = True


def unfreeze_without_refreezing(backbone, n):
    backbone.get_layer("token_embedding").trainable = False
    for layer in backbone.layers:
        if layer not in backbone.transformer_layers:
            layer.trainable = False
    for layer in backbone.transformer_layers[len(backbone.transformer_layers) - n:]:
        layer.trainable = True


def unfreeze_transformer_layers_only(backbone, n):
    for i, layer in enumerate(backbone.transformer_layers):
        layer.trainable = i >= len(backbone.transformer_layers) - n


def unfreeze_by_freezing_the_backbone(backbone, n):
    unfreeze(backbone, n)
    backbone.trainable = False


def test_unfreeze_top_layers(capsys) -> None:
    verdicts(checks.unfreeze_top_layers, unfreeze, [
        (unfreeze_minus_n, r"layers\[-0:\] is the whole list"),
        (unfreeze_without_refreezing, "on every call"),
        (unfreeze_transformer_layers_only, "embeddings"),
        (unfreeze_by_freezing_the_backbone, "stays trainable"),
        (lambda backbone, n: [setattr(layer, "trainable", i < n)
                              for i, layer in enumerate(backbone.transformer_layers)], "top n transformer layers"),
    ], capsys=capsys)


# --- Lesson 05 ------------------------------------------------------------------------------------------------


def augment(flip: str = "horizontal", rotation: float = 0.05, zoom: float | None = 0.1) -> keras.Sequential:
    layers = [keras.layers.RandomFlip(flip), keras.layers.RandomRotation(rotation)]
    return keras.Sequential(layers + ([keras.layers.RandomZoom(zoom)] if zoom is not None else []))


def test_augmentation_check(capsys, policy: str) -> None:
    checks.augmentation(augment(), 16)
    assert "Check passed" in capsys.readouterr().out
    wrongs = [(augment(flip="horizontal_and_vertical"), "RandomFlip\\(\\) flips vertically too"),
              (augment(rotation=0.5), "A small rotation"),
              (augment(zoom=0.9), "A small zoom"),
              (augment(zoom=None), "A small zoom"),
              (keras.Sequential([keras.layers.Identity()]), "Mirror photos left-right"),
              (keras.Sequential([augment(), keras.layers.Rescaling(0.5)]), "leave images untouched"),
              # close to the identity, yet further from it than any policy's rounding: still wrong under each
              (keras.Sequential([augment(), keras.layers.Rescaling(0.97)]), "leave images untouched")]
    for layer, message in wrongs:
        with pytest.raises(checks.CheckFailed, match=message):
            checks.augmentation(layer, 16)


def cnn(filters=(8, 16, 32), head="sigmoid", rescale=False) -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    for f in filters:
        x = keras.layers.MaxPooling2D()(keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation=head)(x))


def test_scratch_cnn_check(capsys, policy: str) -> None:
    checks.scratch_cnn(cnn(), 16)
    assert "Check passed" in capsys.readouterr().out
    for model, message in [(cnn(filters=(8, 16)), "at least three convolution blocks"),
                           (cnn(filters=(8, 8, 8)), "need more filters"),
                           (cnn(head="linear"), "probabilities"),
                           (cnn(rescale=True), r"already arrive in \[0, 1\]"),
                           (cnn(), r"\(image_size, image_size, 3\)")]:
        with pytest.raises(checks.CheckFailed, match=message):
            checks.scratch_cnn(model, 16 if message != r"\(image_size, image_size, 3\)" else 32)


# --- Lesson 06 ------------------------------------------------------------------------------------------------


def dominates(a, b, strictly=True):
    at_least = a["accuracy"] >= b["accuracy"] and a["latency_b1_ms"] <= b["latency_b1_ms"]
    better = a["accuracy"] > b["accuracy"] or a["latency_b1_ms"] < b["latency_b1_ms"]
    return at_least and (better or not strictly)


def pareto(rows):
    front = [row for row in rows if not any(dominates(other, row) for other in rows)]
    return [row["model"] for row in sorted(front, key=lambda row: row["latency_b1_ms"])]


def pareto_without_strictly(rows):
    front = [row for row in rows if not any(dominates(o, row, strictly=False) for o in rows if o is not row)]
    return [row["model"] for row in sorted(front, key=lambda row: row["latency_b1_ms"])]


def pareto_by_latency_sweep(rows):
    front, best = [], -1.0
    for row in sorted(rows, key=lambda row: row["latency_b1_ms"]):
        if row["accuracy"] >= best:
            front.append(row["model"])
            best = row["accuracy"]
    return front


def pareto_in_input_order(rows):
    return [row["model"] for row in rows if not any(dominates(other, row) for other in rows)]


def pareto_sorting_in_place(rows):
    rows.sort(key=lambda row: row["latency_b1_ms"])
    return pareto(rows)


def test_pareto_front(capsys) -> None:
    verdicts(checks.pareto_front, pareto, [
        (pareto_without_strictly, "neither is strictly better"),
        (pareto_by_latency_sweep, "E is dominated"),
        (pareto_in_input_order, "fastest to slowest"),
        (pareto_sorting_in_place, "changed its input `rows` in place"),
    ], capsys=capsys)


def pick(rows, max_latency_ms, max_disk_mb):
    fits = [r for r in rows if r["latency_b1_ms"] <= max_latency_ms and r["disk_mb"] <= max_disk_mb]
    return max(fits, key=lambda r: r["accuracy"])["model"] if fits else None


def test_pick_model(capsys) -> None:
    def strictly_under(rows, max_latency_ms, max_disk_mb):
        fits = [r for r in rows if r["latency_b1_ms"] < max_latency_ms and r["disk_mb"] < max_disk_mb]
        return max(fits, key=lambda r: r["accuracy"])["model"] if fits else None

    def ignoring_disk(rows, max_latency_ms, max_disk_mb):
        return pick(rows, max_latency_ms, float("inf"))

    def the_row(rows, max_latency_ms, max_disk_mb):
        fits = [r for r in rows if r["latency_b1_ms"] <= max_latency_ms and r["disk_mb"] <= max_disk_mb]
        return max(fits, key=lambda r: r["accuracy"]) if fits else None

    def fastest(rows, max_latency_ms, max_disk_mb):
        fits = [r for r in rows if r["latency_b1_ms"] <= max_latency_ms and r["disk_mb"] <= max_disk_mb]
        return min(fits, key=lambda r: r["latency_b1_ms"])["model"] if fits else None

    verdicts(checks.pick_model, pick, [
        (strictly_under, "equal to it fits"),
        (ignoring_disk, "size budget"),
        (the_row, "not the row itself"),
        (fastest, "take the most accurate"),
    ], capsys=capsys)


# --- Lesson 07 ------------------------------------------------------------------------------------------------


def mask(weights, sparsity):
    n = int(round(sparsity * weights.size))
    order = np.argsort(np.abs(weights), axis=None, kind="stable")
    flat = np.ones(weights.size, np.float32)
    flat[order[:n]] = 0.0
    return flat.reshape(weights.shape)


def mask_truncating(weights, sparsity):
    n = int(sparsity * weights.size)
    return mask(weights, n / weights.size)


def mask_by_signed_value(weights, sparsity):
    n = int(round(sparsity * weights.size))
    flat = np.ones(weights.size, np.float32)
    flat[np.argsort(weights, axis=None, kind="stable")[:n]] = 0.0
    return flat.reshape(weights.shape)


def mask_by_threshold(weights, sparsity):
    n = int(round(sparsity * weights.size))
    threshold = np.sort(np.abs(weights), axis=None)[n - 1]  # n = 0 reads index -1, the largest
    return (np.abs(weights) > threshold).astype(np.float32)


def mask_zeroing_in_place(weights, sparsity):
    result = mask(weights, sparsity)
    weights *= result
    return result


def test_magnitude_mask(capsys) -> None:
    verdicts(checks.magnitude_mask, mask, [
        (mask_truncating, r"int\(\) truncates 4.8 to 4"),
        (mask_by_signed_value, r"np.abs\(weights\), not by the signed values"),
        (mask_by_threshold, "Sparsity 0 prunes nothing"),
        (mask_zeroing_in_place, "changed its input `weights` in place"),
    ], capsys=capsys)


def distil(t, s, temperature):
    soft = keras.ops.sigmoid(t / temperature)
    return keras.ops.mean(keras.losses.binary_crossentropy(soft, s / temperature, from_logits=True)) * temperature ** 2


def distil_in_numpy(t, s, temperature):
    q, p = 1 / (1 + np.exp(-np.asarray(t) / temperature)), 1 / (1 + np.exp(-np.asarray(s) / temperature))
    return float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))) * temperature ** 2)


def test_distillation_loss(capsys, policy: str) -> None:
    verdicts(checks.distillation_loss, distil, [
        (lambda t, s, temperature: distil(t, s, temperature) / temperature ** 2, r"temperature \*\* 2"),
        (lambda t, s, temperature: distil(t * temperature, s, temperature), "Divide both"),
        (lambda t, s, temperature: distil(s, t, temperature), "targets"),
        (lambda t, s, temperature: distil(t, s, temperature) * keras.ops.cast(keras.ops.shape(t)[0], "float32"),
         "do not sum"),
        (distil_in_numpy, "inside fit"),
    ], capsys=capsys)


# --- Lesson 08 ------------------------------------------------------------------------------------------------

UNFREEZE_CHOICES = [0, 3, 12, 30]


def space(hp, dropout=None, unfreeze=None, sampling="log", learning_rate=None):
    return {
        "learning_rate": learning_rate or hp.Float("learning_rate", 1e-5, 1e-2, sampling=sampling),
        "dropout": dropout(hp) if dropout else hp.Float("dropout", 0.0, 0.5, step=0.1),
        "batch_size": hp.Choice("batch_size", [16, 32, 64]),
        "unfreeze": unfreeze(hp) if unfreeze else hp.Choice("unfreeze", UNFREEZE_CHOICES),
    }


def test_search_space(capsys) -> None:
    verdicts(checks.search_space, space, [
        (lambda hp: space(hp, unfreeze=lambda hp: hp.Choice("unfreeze", [0, 3, 12])), "one of UNFREEZE_CHOICES"),
        (lambda hp: space(hp, unfreeze=lambda hp: hp.Int("unfreeze", 0, 30)), r"received: Int \[0, 30\]"),
        (lambda hp: space(hp, sampling="linear"), "log scale"),
        (lambda hp: space(hp, dropout=lambda hp: hp.Float("dropout", 0.0, 0.8)), r"received: Float \[0.0, 0.8\]"),
        (lambda hp: dict(space(hp), learning_rate=1e-3), "Return the values `hp` chose"),
        (lambda hp: {k: v for k, v in space(hp).items() if k != "dropout"}, "Four knobs"),
    ], UNFREEZE_CHOICES, capsys=capsys)
    checks.search_space(lambda hp: space(hp, dropout=lambda hp: hp.Choice("dropout", [0.0, 0.25, 0.5])),
                        UNFREEZE_CHOICES)  # a Choice within the prompt's range is a fine answer


def grid(learning_rate=(1e-4, 1e-3, 1e-2), dropout=(0.1, 0.3), unfreeze=tuple(UNFREEZE_CHOICES), continuous=False):
    import keras_tuner

    def grid_space():
        hp = keras_tuner.HyperParameters()
        if continuous:
            hp.Float("learning_rate", 1e-5, 1e-2, sampling="log")
        else:
            hp.Choice("learning_rate", list(learning_rate))
        hp.Choice("dropout", list(dropout))
        hp.Fixed("batch_size", 32)
        hp.Choice("unfreeze", list(unfreeze))
        return hp

    return grid_space


def test_grid_space(capsys) -> None:
    def three_knobs():
        hp = grid()()
        return _without(grid()(), "dropout")

    verdicts(checks.grid_space, grid(), [
        (grid(continuous=True), "10 evenly spaced values"),
        (grid(learning_rate=(1e-3,)), "more than one value"),
        (grid(learning_rate=(1e-3, 0.1)), r"learning_rate values stay within"),
        (grid(unfreeze=(0, 5)), "UNFREEZE_CHOICES"),
        (grid(dropout=(0.1,), unfreeze=(0, 12)), r"at least 20 combinations"),
        (lambda: {"learning_rate": [1e-4, 1e-3]}, "as HyperParameters"),
        (three_knobs, "same four knobs"),
    ], UNFREEZE_CHOICES, 20, capsys=capsys)


def _without(hp, name):
    import keras_tuner

    kept = keras_tuner.HyperParameters()
    for parameter in hp.space:
        if parameter.name != name:
            kept.Choice(parameter.name, list(parameter.values))
    return kept


def best(scores):
    curve, top = [], float("nan")
    for score in scores:
        if score is not None and not np.isnan(score) and (np.isnan(top) or score > top):
            top = float(score)
        curve.append(top)
    return curve


def test_best_so_far(capsys) -> None:
    def from_zero(scores):
        curve, top = [], 0.0
        for score in scores:
            if score is not None and not math.isnan(score):
                top = max(top, score)
            curve.append(top)
        return curve

    verdicts(checks.best_so_far, best, [
        (lambda scores: list(np.maximum.accumulate(np.array(scores, dtype=float))) if scores else [], "NaN spread"),
        (from_zero, "start from NaN, not 0"),
        (lambda scores: best([s for s in scores if s is not None and not math.isnan(s)]), "one value per trial"),
        (lambda scores: list(np.maximum.accumulate([float(s) for s in scores])) if scores else [],
         "raised TypeError"),
    ], capsys=capsys)


# --- Lesson 09 ------------------------------------------------------------------------------------------------


def decode(encoded, size):
    def one(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        return tf.image.resize(image, (size, size)) / 255.0

    return tf.map_fn(one, encoded, fn_output_signature=tf.float32)


def decode_without_expand_animations(encoded, size):
    return tf.map_fn(lambda b: tf.image.resize(tf.io.decode_image(b, channels=3), (size, size)) / 255.0, encoded,
                     fn_output_signature=tf.float32)


def decode_with_crop_or_pad(encoded, size):
    def one(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        return tf.cast(tf.image.resize_with_crop_or_pad(image, size, size), tf.float32) / 255.0

    return tf.map_fn(one, encoded, fn_output_signature=tf.float32)


def decode_keeping_the_channels(encoded, size):
    return tf.map_fn(lambda b: tf.image.resize(tf.io.decode_image(b, expand_animations=False), (size, size)) / 255.0,
                     encoded, fn_output_signature=tf.float32)


def test_decoded_images(capsys) -> None:
    verdicts(checks.decoded_images, decode, [
        (decode_without_expand_animations, "fails when traced for export"),
        (decode_with_crop_or_pad, "not cropped or padded"),
        (decode_keeping_the_channels, "channels=3"),
        (lambda encoded, size: decode(encoded, size) * 255.0, r"float32 in \[0, 1\]"),
    ], capsys=capsys)


def request(images):
    return {"instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


def test_serving_request(capsys) -> None:
    verdicts(checks.serving_request, request, [
        (lambda images: {"instances": [{"b64": base64.b64encode(i)} for i in images]}, "must be text"),
        (lambda images: {"instances": [{"b64": base64.urlsafe_b64encode(i).decode()} for i in images]}, "URL-safe"),
        (lambda images: {"instances": [{"b64": i.hex()} for i in images]}, "hexadecimal"),
        (lambda images: {"inputs": [{"b64": base64.b64encode(i).decode()} for i in images]}, "row format"),
        (lambda images: {"instances": [base64.b64encode(i).decode() for i in images]}, "JSON cannot carry raw bytes"),
        (lambda images: {"instances": [{"b64": base64.b64encode(i).decode()} for i in images[::-1]]}, "in order"),
    ], capsys=capsys)
    named = lambda images: {"instances": [{"image_bytes": request([i])["instances"][0]} for i in images]}  # noqa: E731
    checks.serving_request(named)  # TF Serving's row format with the input named: valid too


# --- Lesson 10 ------------------------------------------------------------------------------------------------


def test_learning_rate_scaling(capsys) -> None:
    verdicts(checks.learning_rate_scaling, lambda lr, base, batch: lr * batch / base, [
        (lambda lr, base, batch: lr * base / batch, "upside down"),
        (lambda lr, base, batch: lr * math.sqrt(batch / base), "square-root rule"),
        (lambda lr, base, batch: lr * (batch // base), "integer division"),
        (lambda lr, base, batch: batch / base, "Multiply the ratio by base_lr"),
    ], capsys=capsys)


def tf_config(addresses, index):
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}


def test_cluster_config(capsys) -> None:
    def chief_first(addresses, index):
        return {"cluster": {"worker": list(addresses)}, "task": {"type": "chief" if index == 0 else "worker",
                                                                   "index": index}}

    def sorting_in_place(worker_addresses, index):
        worker_addresses.sort()
        return tf_config(worker_addresses, index)

    verdicts(checks.cluster_config, tf_config, [
        (chief_first, "No such job in cluster: 'chief'"),
        (lambda addresses, index: tf_config(sorted(addresses), index), "do not sort them"),
        (sorting_in_place, "changed its input `worker_addresses` in place"),
        (lambda addresses, index: {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": str(index)}},
         "which worker this process is"),
        (lambda addresses, index: {"worker": addresses, "index": index}, "keys 'cluster' and 'task'"),
    ], capsys=capsys)


# --- Lesson 11 ------------------------------------------------------------------------------------------------


def macro_f1_solution(y_true, y_pred, n_classes):
    f1 = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        predicted, actual = np.sum(y_pred == c), np.sum(y_true == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(f1))


def macro_f1_over_predicted_classes(y_true, y_pred, n_classes):
    f1 = []
    for c in np.unique(y_pred):
        tp = np.sum((y_pred == c) & (y_true == c))
        precision, recall = tp / np.sum(y_pred == c), tp / np.sum(y_true == c)
        f1.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(f1))


def macro_f1_with_nan(y_true, y_pred, n_classes):
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = []
        for c in range(n_classes):
            tp = np.sum((y_pred == c) & (y_true == c))
            precision, recall = tp / np.sum(y_pred == c), tp / np.sum(y_true == c)
            f1.append(2 * precision * recall / (precision + recall))
    return float(np.mean(f1))


def test_macro_f1() -> None:
    checks.macro_f1(macro_f1_solution)
    from kitlib import evaluate  # the kit's report agrees with the check's case

    report = evaluate.classification_report(lesson11._F1_TRUE, lesson11._F1_PRED, ["a", "b", "c"])
    assert np.isclose(report["macro avg"]["f1-score"], macro_f1_solution(lesson11._F1_TRUE, lesson11._F1_PRED, 3))
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.macro_f1(stub)


@pytest.mark.parametrize("wrong, named", [
    (lambda t, p, n: float(np.mean(t == p)), "micro average"),
    (macro_f1_over_predicted_classes, "never predicted"),
    (macro_f1_with_nan, "not NaN"),
    (lambda t, p, n: float(np.average([_f1(t, p, c) for c in range(n)], weights=np.bincount(t, minlength=n))),
     "support-weighted"),
    (lambda t, p, n: "0.45", "Per-class F1 here"),
    (lambda t, p, n: None, "returns one number"),
])
def test_macro_f1_names_the_mistake(wrong, named: str) -> None:
    with pytest.raises(checks.CheckFailed, match=named):
        checks.macro_f1(wrong)


def _f1(y_true, y_pred, c):
    tp = np.sum((y_pred == c) & (y_true == c))
    predicted, actual = np.sum(y_pred == c), np.sum(y_true == c)
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0


def test_vgg_classifier_check(policy: str) -> None:
    import keras

    def vgg(n_classes: int, activation: str = "softmax", blocks: int = 3) -> keras.Model:
        inputs = keras.Input((16, 16, 3))
        x = inputs
        for filters in (8, 16, 32)[:blocks]:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation=activation)(x))

    checks.vgg_classifier(vgg(10), 16, 10)
    with pytest.raises(checks.CheckFailed, match="Softmax turns the k scores"):
        checks.vgg_classifier(vgg(10, "sigmoid"), 16, 10)
    with pytest.raises(checks.CheckFailed, match="one unit per class"):
        checks.vgg_classifier(vgg(1, "sigmoid"), 16, 10)
    with pytest.raises(checks.CheckFailed, match="blocks of two 3x3 convolutions"):
        checks.vgg_classifier(vgg(10, blocks=2), 16, 10)

# --- Lesson 12 ------------------------------------------------------------------------------------------------


def per_class_recall_solution(matrix):
    rows = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), rows, out=np.zeros(len(rows)), where=rows > 0)


def confident_mistakes_solution(probabilities, y_true, n):
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != y_true)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:n]


def test_per_class_recall(capsys) -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        verdicts(checks.per_class_recall, per_class_recall_solution, [
            (lambda m: np.diag(m) / m.sum(axis=0), "That is precision"),
            (lambda m: np.diag(m) / m.sum(axis=1), "not NaN"),
            (lambda m: np.diag(m) / m.sum(), "divides by every example"),
        ], capsys=capsys)


def test_confident_mistakes(capsys) -> None:
    def ranked_by_true_class(p, y, n):
        wrong = np.flatnonzero(p.argmax(axis=1) != y)
        return wrong[np.argsort(p[wrong, y[wrong]])][:n]

    verdicts(checks.confident_mistakes, confident_mistakes_solution, [
        (lambda p, y, n: np.argsort(-p.max(axis=1))[:n], "right answers"),
        (lambda p, y, n: confident_mistakes_solution(p, y, n)[::-1], "Least confident first"),
        (ranked_by_true_class, "probability of the true class"),
        (lambda p, y, n: np.flatnonzero(p.argmax(axis=1) != y), "exactly n"),
    ], capsys=capsys)

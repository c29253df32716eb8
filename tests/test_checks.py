"""Exercise checks, lesson by lesson: the reference answer passes, the unwritten stub says "not written yet", and
plausible wrong answers (those found by working the student copies among them) fail with a message naming the
mistake. Among them, for every check: an answer that ignores an argument the prompt names, and a lookup table of the
cases the messages print, which the cases a check keeps unseen must catch.
Every test runs under each precision policy the kit supports (float32, and the mixed policies a GPU or TPU
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


SHOWN_NEIGHBOURS = {("good", 3): ["superb", "great", "[UNK]"], ("bad", 2): ["awful", "dreadful"]}


def neighbours_from_the_shown_cases(word, vectors, vocabulary, k):
    return SHOWN_NEIGHBOURS[(word, k)]


def neighbours_shown_else_by_dot(word, vectors, vocabulary, k):
    return SHOWN_NEIGHBOURS.get((word, k)) or neighbours_by_dot(word, vectors, vocabulary, k)


def test_nearest_neighbours(capsys) -> None:
    verdicts(checks.nearest_neighbours, neighbours, [
        (neighbours_by_euclid, "ranking by Euclidean distance"),
        (neighbours_by_dot, "raw dot product, which favours long vectors"),
        (neighbours_with_itself, "its own neighbour"),
        (neighbours_least_similar_first, "least similar first"),
        (neighbours_normalising_in_place, "changed its input `vectors` in place"),
        (lambda word, vectors, vocabulary, k: neighbours(word, vectors, vocabulary, 2), "exactly k = 3"),
        (neighbours_from_the_shown_cases, "raised KeyError.*\n.*on a case not shown"),
        (neighbours_shown_else_by_dot, "A case not shown failed(.|\n)*raw dot product"),
    ], capsys=capsys)


def test_a_failure_points_to_the_fuller_hint(capsys) -> None:
    with pytest.raises(checks.CheckFailed, match=r"kitlib.checks.hint\('nearest_neighbours'\) prints a fuller hint"):
        checks.nearest_neighbours(neighbours_by_dot)
    checks.hint("nearest_neighbours")
    assert "np.argsort(-similarity)" in capsys.readouterr().out  # the code is one step further, not in the message
    checks.hint("write_projector_files")  # the lesson's own function name works too
    assert "parents=True" in capsys.readouterr().out
    checks.hint("no_such_exercise")
    assert "pick_model" in capsys.readouterr().out


def test_unseen_cases_do_not_print_their_inputs() -> None:
    with pytest.raises(checks.CheckFailed) as failure:
        checks.nearest_neighbours(neighbours_shown_else_by_dot)
    assert "expected" not in str(failure.value) and "w1" not in str(failure.value)


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


def write_without_parents(folder: Path, vectors, vocabulary) -> None:
    folder.mkdir(exist_ok=True)  # fine one level deep; the lesson's folder is two levels deep
    write_ok(folder, vectors, vocabulary)


def write_without_exist_ok(folder: Path, vectors, vocabulary) -> None:
    folder.mkdir(parents=True)
    write_ok(folder, vectors, vocabulary)


def write_appending(folder: Path, vectors, vocabulary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "vectors.tsv", "a") as out_v, open(folder / "metadata.tsv", "a") as out_m:
        for vector, word in zip(vectors[1:], vocabulary[1:]):
            out_v.write("\t".join(map(str, vector)) + "\n")
            out_m.write(word + "\n")


def write_the_shown_table(folder: Path, vectors, vocabulary) -> None:
    from kitlib.checks import lesson01

    write_ok(folder, lesson01._VECTORS, lesson01._WORDS)


def test_projector_export(capsys) -> None:
    verdicts(checks.projector_export, write_ok, [
        (write_with_padding, "without the padding token"),
        (write_with_header, "no header line"),
        (write_with_spaces, "tab-separated"),
        (write_without_mkdir, "does not exist yet"),
        (write_without_parents, "does not exist yet.*the folder above it.*two levels deep"),
        (write_without_exist_ok, "second run the folder is already there"),
        (write_appending, "Running the lesson again rewrites both files"),
        (write_the_shown_table, "A case not shown failed: another vocabulary"),
        (lambda folder, v, w: folder.mkdir(parents=True, exist_ok=True), "vectors.tsv should be written"),
    ], capsys=capsys)


# --- Lesson 02 ------------------------------------------------------------------------------------------------


def test_lstm_model_check(capsys, policy: str) -> None:
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorizer.adapt(["a wonderful film", "a dull film"])

    def build(mask: bool = True, head: str = "sigmoid", bidirectional: bool = True, sequences: bool = False,
              vocab_size: int = 50, embed_dim: int = 4, units: int = 3) -> keras.Model:
        lstm = keras.layers.LSTM(units, return_sequences=sequences)
        return keras.Sequential([
            keras.Input(shape=(), dtype="string"), vectorizer,
            keras.layers.Embedding(vocab_size, embed_dim, mask_zero=mask),
            keras.layers.Bidirectional(lstm) if bidirectional else lstm,
            keras.layers.Dense(1, activation=head),
        ])

    def build_lstm(vectorizer, vocab_size, embed_dim, units):
        return build(vocab_size=vocab_size, embed_dim=embed_dim, units=units)

    def build_ignoring_units(vectorizer, vocab_size, embed_dim, units):
        return build(vocab_size=vocab_size, embed_dim=embed_dim)

    checks.lstm_model(build(), ["good", "bad film"])
    checks.lstm_model(build(), ["good", "bad film"], build_lstm, vectorizer)
    assert capsys.readouterr().out.count("Check passed") == 2
    with pytest.raises(checks.CheckFailed, match="A case not shown failed: a model built with other sizes"):
        checks.lstm_model(build(), ["good", "bad film"], build_ignoring_units, vectorizer)
    with pytest.raises(checks.CheckFailed, match="`build_lstm_model` is not written yet"):
        def build_lstm_model():
            raise NotImplementedError()
        checks.call(build_lstm_model)
    for model, message in [(build(mask=False), "mask_zero=True"),
                           (build(head="linear"), "turn a score into a probability"),
                           (build(bidirectional=False), "bidirectional LSTM"),
                           # the old hint said "End with Dense(1, sigmoid)", which this model does
                           (build(sequences=True), r"whole sequence \(return_sequences=True\)(.|\n)*final state")]:
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


def mistakes_from_the_shown_cases(y_true, probs, k):
    return {3: [3, 2, 1], 10: [3, 2, 1, 4]}[k]


def test_most_confident_mistakes(capsys) -> None:
    verdicts(checks.most_confident_mistakes, mistakes, [
        (lambda y, p, k: mistakes(y, p, 3), "With k larger than the number of mistakes"),
        (mistakes_from_the_shown_cases, "on a case not shown"),
        (lambda y, p, k: [3, 2, 1, 4][:k], "A case not shown failed: on other labels"),
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
        (lambda ids, selected, mask_id: mlm_targets(ids, selected, 4), "A case not shown failed: other token ids"),
    ], capsys=capsys)


def test_causal_mask(capsys) -> None:
    verdicts(checks.causal_mask, lambda n: np.tril(np.ones((n, n), bool)), [
        (lambda n: np.triu(np.ones((n, n), bool)), "transpose"),
        (lambda n: np.tril(np.ones((n, n), bool), -1), "The diagonal is missing"),
        (lambda n: np.ones((n, n), bool), "see the future too"),
        (lambda n: np.tril(np.ones((4, 4), bool)), "One row per position"),
        (lambda n: {4: np.tril(np.ones((4, 4), bool)), 1: np.ones((1, 1), bool)}[n], "on a case not shown"),
        (lambda n: np.tril(np.ones((n, n), bool)) if n in (4, 1) else np.ones((n, n), bool),
         "A case not shown failed: for another length"),
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
        (lambda peak, warmup, total: WarmupLinearDecay(peak, 10, total), "A case not shown failed: another peak"),
        (lambda peak, warmup, total: WarmupLinearDecay(1e-3, 10, 110), "A case not shown failed: another peak"),
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


def unfreeze_the_bottom_layers(backbone, n):
    for layer in backbone.layers:
        layer.trainable = False
    for layer in backbone.transformer_layers[:n]:
        layer.trainable = True


def unfreeze_assuming_three_layers(backbone, n):
    for layer in backbone.layers:
        layer.trainable = False
    for layer in backbone.transformer_layers[3 - n:]:
        layer.trainable = True


def test_unfreeze_top_layers(capsys) -> None:
    verdicts(checks.unfreeze_top_layers, unfreeze, [
        (unfreeze_minus_n, r"layers\[-0:\] is the whole list"),
        (unfreeze_without_refreezing, "on every call"),
        (unfreeze_transformer_layers_only, "embeddings"),
        (unfreeze_by_freezing_the_backbone, "stays trainable"),
        (unfreeze_the_bottom_layers, "Only the top n transformer layers train"),
        (unfreeze_assuming_three_layers, "A case not shown failed: on a backbone of another depth"),
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


def cnn(filters=(8, 16, 32), head="sigmoid", rescale=False, image_size=16) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    for f in filters:
        x = keras.layers.MaxPooling2D()(keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation=head)(x))


def test_scratch_cnn_check(capsys, policy: str) -> None:
    checks.scratch_cnn(cnn(), 16)
    checks.scratch_cnn(cnn(), 16, lambda image_size: cnn(image_size=image_size))
    assert capsys.readouterr().out.count("Check passed") == 2
    with pytest.raises(checks.CheckFailed, match="A case not shown failed: the model built for another image size"):
        checks.scratch_cnn(cnn(), 16, lambda image_size: cnn())  # ignores image_size
    for model, message in [(cnn(filters=(8, 16)), "at least three convolution blocks"),
                           (cnn(filters=(8, 8, 8)), "need more filters"),
                           (cnn(head="linear"), "probabilities"),
                           (cnn(rescale=True), r"already arrive in \[0, 1\]"),
                           (cnn(), r"input is \(image_size, image_size, 3\)")]:
        with pytest.raises(checks.CheckFailed, match=message):
            checks.scratch_cnn(model, 16 if message != r"input is \(image_size, image_size, 3\)" else 32)


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
    shown = {6: ["A", "B", "F", "D"], 1: ["C"]}
    verdicts(checks.pareto_front, pareto, [
        (lambda rows: shown[len(rows)], "on a case not shown"),
        (lambda rows: shown.get(len(rows)) or [row["model"] for row in rows], "A case not shown failed: other models"),
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

    shown = {(float("inf"), float("inf")): "D", (20.0, 100.0): "B", (10.0, 20.0): "B", (100.0, 10.0): "C",
             (5.0, 0.8): "E", (1.0, 100.0): None}

    def from_the_shown_cases(rows, max_latency_ms, max_disk_mb):
        return shown[(max_latency_ms, max_disk_mb)]

    def first_row_that_fits(rows, max_latency_ms, max_disk_mb):
        fits = [r for r in rows if r["latency_b1_ms"] <= max_latency_ms and r["disk_mb"] <= max_disk_mb]
        return fits[0]["model"] if fits else None

    verdicts(checks.pick_model, pick, [
        (strictly_under, "equal to it fits"),
        (ignoring_disk, "size budget"),
        (the_row, "not its row"),
        (fastest, "take the most accurate"),
        (first_row_that_fits, "take the most accurate"),
        (from_the_shown_cases, "on a case not shown"),
        (lambda rows, latency, disk: shown[(latency, disk)] if (latency, disk) in shown else pick(rows, latency, 1e9),
         "A case not shown failed: other models and other budgets"),
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


def mask_per_row(weights, sparsity):
    order = np.argsort(np.abs(weights))  # sorts along the last axis: each row on its own
    n = int(round(sparsity * weights.shape[-1]))
    result = np.ones(weights.shape, np.float32)
    np.put_along_axis(result, order[..., :n], 0.0, axis=-1)
    return result


SHOWN_MASKS = {0.5: [[1, 0], [1, 0], [0, 1]], 0.0: [[1, 1], [1, 1], [1, 1]], 0.8: [[0, 0], [1, 0], [0, 0]],
               1 / 3: [[1, 0], [1, 1], [0, 1]]}


def test_magnitude_mask(capsys) -> None:
    verdicts(checks.magnitude_mask, mask, [
        (mask_truncating, r"int\(\) truncates \(4.8 becomes 4\)"),
        (mask_by_signed_value, "ranks the signed values"),
        # the old message blamed the rounding of 4.8 for this one
        (mask_per_row, "prunes within each row"),
        (lambda weights, sparsity: np.array(SHOWN_MASKS[sparsity], np.float32) if weights.shape == (3, 2)
         else {0.75: mask}[sparsity](weights, sparsity), "on a case not shown"),  # the shown 4-D kernel too
        (lambda weights, sparsity: mask(weights, sparsity) if weights.shape == (3, 2) or weights.ndim == 4
         else mask(weights, 0.5), "A case not shown failed: other weights"),
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
        (lambda t, s, temperature: distil(t, s, temperature) / temperature ** 2, "The T² factor is missing"),
        (lambda t, s, temperature: distil(t * temperature, s, temperature), "Soften both"),
        (lambda t, s, temperature: distil(s, t, temperature), "targets"),
        (lambda t, s, temperature: distil(t, s, temperature) * keras.ops.cast(keras.ops.shape(t)[0], "float32"),
         "a sum over the batch"),
        (distil_in_numpy, "inside fit"),
        (lambda t, s, temperature: distil(t, s, 2.0 if temperature != 1.0 else 1.0),  # T of the shown cases only
         "A case not shown failed: another batch size, other logits and another temperature"),
        (lambda t, s, temperature: distil(t, s, temperature) * keras.ops.cast(keras.ops.shape(t)[0], "float32") / 3,
         "A case not shown failed: another batch size"),  # right for the shown batch of 3 only
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
        (lambda hp: dict(space(hp), batch_size=16), "A case not shown failed: the tuner fixed every knob"),
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
        (lambda scores: {"[0.6, 0.55, 0.7, 0.65, 0.8]": [0.6, 0.6, 0.7, 0.7, 0.8], "[None, 0.5, nan, 0.4]": [
            float("nan"), 0.5, 0.5, 0.5], "[0.3, nan, None, 0.2, 0.9]": [0.3, 0.3, 0.3, 0.3, 0.9], "[]": []}.get(
            repr(scores), [0.5] * len(scores)), "A case not shown failed: other scores"),  # the printed cases
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
        (decode_keeping_the_channels, "a grayscale PNG has 1 channel"),
        (lambda encoded, size: decode(encoded, size) * 255.0, r"float32 in \[0, 1\]"),
        (lambda encoded, size: decode(encoded, 8), "A case not shown failed: another image size"),
        (lambda encoded, size: decode(encoded[:2], size),  # two images, as many as shown
         "A case not shown failed: another image size and another batch size"),
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
        (lambda images: {"instances": [{"b64": "/9j/++++SlBFRw=="}, {"b64": "iVBORw0KGgr7//5QTkc="}]},
         "A case not shown failed: other images"),  # the shown images' base64, whatever the input
    ], capsys=capsys)
    named = lambda images: {"instances": [{"image_bytes": request([i])["instances"][0]} for i in images]}  # noqa: E731
    checks.serving_request(named)  # TF Serving's row format with the input named: valid too


# --- Lesson 10 ------------------------------------------------------------------------------------------------


SHOWN_RATES = {(1e-3, 32, 256): 8e-3, (2e-5, 32, 16): 1e-5, (3e-3, 32, 48): 4.5e-3}


def test_learning_rate_scaling(capsys) -> None:
    verdicts(checks.learning_rate_scaling, lambda lr, base, batch: lr * batch / base, [
        (lambda lr, base, batch: lr * base / batch, "upside down"),
        (lambda lr, base, batch: lr * math.sqrt(batch / base), "square-root rule"),
        (lambda lr, base, batch: lr * (batch // base), "integer division"),
        (lambda lr, base, batch: batch / base, "the ratio alone"),
        # the three cases the messages print, looked up: the lesson would train at the wrong rate
        (lambda lr, base, batch: SHOWN_RATES[(lr, base, batch)], "on a case not shown"),
        (lambda lr, base, batch: SHOWN_RATES.get((lr, base, batch), lr), "A case not shown failed: another base rate"),
        (lambda lr, base, batch: lr * batch / 32, "A case not shown failed: another base rate"),  # ignores base_batch
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
        (lambda addresses, index: tf_config(["machine-c:2222", "machine-a:2222", "machine-b:2222"], index),
         "A case not shown failed: another cluster size"),
        (lambda addresses, index: tf_config(addresses, {0: 0, 2: 2}[index]), "on a case not shown"),
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
    # n_classes ignored: a class absent from the batch (no true and no predicted example) drops out of the mean
    (lambda t, p, n: macro_f1_solution(t, p, int(max(t.max(), p.max())) + 1),
     "A case not shown failed(.|\n)*A class absent from this batch"),
    (lambda t, p, n: macro_f1_solution(t, p, 3), "A case not shown failed: another batch, another number of classes"),
    (lambda t, p, n: {3: 0.4523809523809524, 4: 1.0}[n], "on a case not shown"),  # the shown answers
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

    def vgg(n_classes: int, activation: str = "softmax", blocks: int = 3, size: int = 16) -> keras.Model:
        inputs = keras.Input((size, size, 3))
        x = inputs
        for filters in (8, 16, 32)[:blocks]:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation=activation)(x))

    checks.vgg_classifier(vgg(10), 16, 10)
    checks.vgg_classifier(vgg(10), 16, 10, lambda image_size, n_classes: vgg(n_classes, size=image_size))
    with pytest.raises(checks.CheckFailed, match="A case not shown failed: a model built for another number"):
        checks.vgg_classifier(vgg(10), 16, 10, lambda image_size, n_classes: vgg(10, size=image_size))
    with pytest.raises(checks.CheckFailed, match="A case not shown failed: the model built for another image size"):
        checks.vgg_classifier(vgg(10), 16, 10, lambda image_size, n_classes: vgg(n_classes))
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
            (lambda m: np.diag(m) // np.maximum(m.sum(axis=1), 1), "// is integer division"),
            (lambda m: np.array([0.8, 0.5, 0.0]), "A case not shown failed: another matrix"),
            (lambda m: per_class_recall_solution(m[:3, :3]), "A case not shown failed: another matrix"),  # 3 classes
        ], capsys=capsys)


def test_confident_mistakes(capsys) -> None:
    def ranked_by_true_class(p, y, n):
        wrong = np.flatnonzero(p.argmax(axis=1) != y)
        return wrong[np.argsort(p[wrong, y[wrong]])][:n]

    def ignoring_the_class_count(p, y, n):  # assumes 3 classes, the shown case's
        wrong = np.flatnonzero(p[:, :3].argmax(axis=1) != y)
        return wrong[np.argsort(-p[wrong, :3].max(axis=1), kind="stable")][:n]

    verdicts(checks.confident_mistakes, confident_mistakes_solution, [
        (lambda p, y, n: np.argsort(-p.max(axis=1))[:n], "right answers"),
        (lambda p, y, n: confident_mistakes_solution(p, y, n)[::-1], "Least confident first"),
        (ranked_by_true_class, "probability of the true class"),
        (lambda p, y, n: np.flatnonzero(p.argmax(axis=1) != y), "Return n indices"),
        (lambda p, y, n: {3: [4, 1, 3], 5: [1]}[n], "on a case not shown"),
        (ignoring_the_class_count, "A case not shown failed: other probabilities, another number of classes"),
        (lambda p, y, n: confident_mistakes_solution(p, y, 3 if n < 5 else n), "A case not shown failed"),  # n ignored
    ], capsys=capsys)


# --- Hints ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, solution_code", [
    (checks.pick_model, lambda rows, latency, disk: rows[0]["model"], "max(fits"),
    (checks.mlm_targets, mlm_targets_labels_everywhere, "np.where(selected"),
    (checks.causal_mask, lambda n: np.ones((n, n), bool), "np.tril("),
    (checks.warmup_linear_decay, lambda peak, warmup, total: keras.optimizers.schedules.PolynomialDecay(peak, total),
     "peak * step / warmup_steps"),
    (checks.distillation_loss, lambda t, s, temperature: distil(t, s, temperature) / 3, "sigmoid(teacher_logits"),
    (checks.per_class_recall, lambda m: np.diag(m) // np.maximum(m.sum(axis=1), 1), "np.divide("),
    (checks.confident_mistakes, lambda p, y, n: np.argsort(-p.max(axis=1))[:n], "probabilities.max(axis=1)"),
    (checks.magnitude_mask, mask_per_row, "np.argsort(np.abs(weights), axis=None)"),
])
def test_a_hint_teaches_without_the_code(check: Callable, wrong: Callable, solution_code: str, capsys) -> None:
    with pytest.raises(checks.CheckFailed) as failure:
        check(wrong)
    assert solution_code not in str(failure.value) and "kitlib.checks.hint(" in str(failure.value)
    checks.hint(check.__name__)
    assert solution_code in capsys.readouterr().out  # one explicit step further


"""Exercise checks pass correct work, and fail wrong work and the unwritten stub with a helpful message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kitlib import checks


def neighbours(word, vectors, vocabulary, k):
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = vocabulary.index(word)
    return [vocabulary[i] for i in np.argsort(-(unit @ unit[index])) if i != index][:k]


def neighbours_by_euclid(word, vectors, vocabulary, k):
    index = vocabulary.index(word)
    distance = np.linalg.norm(vectors - vectors[index], axis=1)
    return [vocabulary[i] for i in np.argsort(distance) if i != index][:k]


def stub(*args, **kwargs):
    raise NotImplementedError()


def test_nearest_neighbours() -> None:
    checks.nearest_neighbours(neighbours)
    with pytest.raises(checks.CheckFailed, match="its own neighbour"):
        checks.nearest_neighbours(lambda w, v, voc, k: [w] + neighbours(w, v, voc, k)[: k - 1])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.nearest_neighbours(stub)


def test_nearest_neighbours_catches_a_wrong_similarity() -> None:
    with pytest.raises(checks.CheckFailed, match="Compare directions, not distances") as err:
        checks.nearest_neighbours(neighbours_by_euclid)
    assert "expected: ['superb', 'great']" in str(err.value) and "received: ['great'" in str(err.value)


def write_ok(folder: Path, vectors, vocabulary) -> None:
    (folder / "vectors.tsv").write_text("".join("\t".join(map(str, v)) + "\n" for v in vectors[1:]))
    (folder / "metadata.tsv").write_text("".join(w + "\n" for w in vocabulary[1:]))


def write_with_padding(folder: Path, vectors, vocabulary) -> None:
    (folder / "vectors.tsv").write_text("".join("\t".join(map(str, v)) + "\n" for v in vectors))
    (folder / "metadata.tsv").write_text("".join(w + "\n" for w in vocabulary))


def test_projector_export() -> None:
    checks.projector_export(write_ok)
    with pytest.raises(checks.CheckFailed, match="without the padding token"):
        checks.projector_export(write_with_padding)
    with pytest.raises(checks.CheckFailed, match="vectors.tsv should be written"):
        checks.projector_export(lambda folder, v, w: None)
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.projector_export(stub)


def mistakes(y_true, probs, k):
    wrong = np.flatnonzero((probs > 0.5).astype(int) != y_true)
    return wrong[np.argsort(-np.abs(probs[wrong] - 0.5), kind="stable")][:k]


def test_most_confident_mistakes() -> None:
    checks.most_confident_mistakes(mistakes)
    with pytest.raises(checks.CheckFailed, match="most confident first"):
        checks.most_confident_mistakes(lambda y, p, k: np.flatnonzero((p > 0.5) != y)[:k])
    with pytest.raises(checks.CheckFailed, match="return every mistake"):
        checks.most_confident_mistakes(lambda y, p, k: np.argsort(-np.abs(p - 0.5) * ((p > 0.5) != y))[:k])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.most_confident_mistakes(stub)


def test_lstm_model_check() -> None:
    import keras

    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorizer.adapt(["a wonderful film", "a dull film"])

    def build(mask: bool, head: str = "sigmoid") -> keras.Model:
        return keras.Sequential([
            keras.Input(shape=(), dtype="string"), vectorizer,
            keras.layers.Embedding(50, 4, mask_zero=mask),
            keras.layers.Bidirectional(keras.layers.LSTM(3)),
            keras.layers.Dense(1, activation=head),
        ])

    checks.lstm_model(build(True), ["good", "bad film"])
    with pytest.raises(checks.CheckFailed, match="mask_zero=True"):
        checks.lstm_model(build(False), ["good", "bad film"])
    with pytest.raises(checks.CheckFailed, match="activation='sigmoid'"):
        checks.lstm_model(build(True, head="linear"), ["good", "bad film"])


# --- lesson 05 (moved from the photo tests) --------------------------------------------------


def test_checks_explain_stubs_and_catch_wrong_answers() -> None:
    import keras

    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="not written yet"):
        checks.build(stub)
    with pytest.raises(checks.CheckFailed, match="untouched"):
        checks.augmentation(keras.layers.Rescaling(0.5), 16)
    with pytest.raises(checks.CheckFailed, match="new random variant"):
        checks.augmentation(keras.Sequential([keras.layers.Identity()]), 16)
    checks.augmentation(keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.05)]), 16)

    shallow = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3), keras.layers.GlobalAveragePooling2D(),
                                keras.layers.Dense(1, activation="sigmoid")])
    with pytest.raises(checks.CheckFailed, match="at least three convolution blocks"):
        checks.scratch_cnn(shallow, 16)
    blocks = [keras.Input((16, 16, 3))]
    for filters in (8, 16, 32):
        blocks += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D()]
    blocks.append(keras.layers.GlobalAveragePooling2D())
    logits = keras.Sequential(blocks + [keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(5.0))])
    with pytest.raises(checks.CheckFailed, match="probabilities"):
        checks.scratch_cnn(logits, 16)
    checks.scratch_cnn(keras.Sequential(blocks + [keras.layers.Dense(1, activation="sigmoid")]), 16)


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

    report = evaluate.classification_report(checks._F1_TRUE, checks._F1_PRED, ["a", "b", "c"])
    assert np.isclose(report["macro avg"]["f1"], macro_f1_solution(checks._F1_TRUE, checks._F1_PRED, 3))
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


def test_vgg_classifier_check() -> None:
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

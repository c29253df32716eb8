"""Exercise checks: each runs the learner's code on a case with a known answer and says what to fix."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


class CheckFailed(AssertionError):
    """An exercise check did not pass; the message says what was expected and how to fix it."""


def expect(ok: bool, what: str, expected: Any, received: Any, hint: str) -> None:
    """Raise CheckFailed with expected, received and a hint unless `ok`."""
    if not ok:
        raise CheckFailed(f"{what}\n  expected: {expected}\n  received: {received}\n  hint: {hint}")


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning the unwritten stub into a friendly message."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"`{fn.__name__}` is not written yet: replace `raise NotImplementedError()` with your code, "
            "run that cell, then run this check again."
        ) from None


def build(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's builder (e.g. `build_lstm_model`) for a check, explaining an unwritten stub."""
    return _call(fn, *args, **kwargs)


def passed(message: str) -> None:
    """Tell the learner the check passed."""
    print(f"Check passed: {message}")


# A tiny embedding table with a known geometry. "superb" points exactly where "good" points but is
# three times longer, so cosine similarity ranks it first while Euclidean distance prefers "great".
_WORDS = ["", "[UNK]", "good", "great", "bad", "awful", "plot", "superb"]
_VECTORS = np.array(
    [[0, 0, 0], [0.1, 0.1, 0.1], [1, 0.1, 0], [0.9, 0.3, 0], [-1, 0, 0.1], [-0.8, 0, 0.3], [0, 1, 0], [3, 0.3, 0]],
    dtype=np.float32,
)


def nearest_neighbours(fn: Callable[[str, np.ndarray, list[str], int], list[str]]) -> None:
    """Check `fn(word, vectors, vocabulary, k)` returns the k most cosine-similar other words."""
    got = _call(fn, "good", _VECTORS, _WORDS, 2)
    expect(isinstance(got, (list, tuple)), "nearest_neighbours should return a list of words.",
           "a list such as ['great', ...]", type(got).__name__, "Return `[vocabulary[i] for i in order[:k]]`.")
    got = list(got)
    expect(len(got) == 2, "It should return exactly k words.", 2, len(got), "Slice the sorted order with [:k].")
    expect("good" not in got, "A word is not its own neighbour.", "no 'good' in the answer", got,
           "Skip the query word's own index (its cosine similarity with itself is 1).")
    expect(got == ["superb", "great"],
           "In the test table 'superb' points the same way as 'good' (cosine 1) and 'great' almost so.",
           ["superb", "great"], got,
           "Compare directions, not distances: normalise the vectors to unit length, take dot products "
           "with the query, sort descending.")
    got = list(_call(fn, "bad", _VECTORS, _WORDS, 1))
    expect(got == ["awful"], "The closest word to 'bad' is 'awful'.", ["awful"], got,
           "Sort by similarity, highest first.")
    passed("neighbours are sorted by cosine similarity and exclude the word itself.")


def projector_export(fn: Callable[[Path, np.ndarray, list[str]], None]) -> None:
    """Check `fn(folder, vectors, vocabulary)` writes vectors.tsv and metadata.tsv for the Projector."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _call(fn, folder, _VECTORS, _WORDS)
        for name in ("vectors.tsv", "metadata.tsv"):
            expect((folder / name).exists(), f"{name} should be written into the folder.", name,
                   sorted(p.name for p in folder.iterdir()), "Write both files with `open(folder / name, 'w')`.")
        vectors = (folder / "vectors.tsv").read_text(encoding="utf-8").splitlines()
        words = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    expected_words = _WORDS[1:]
    expect(words == expected_words, "metadata.tsv holds one word per line, without the padding token.",
           expected_words, words, "Skip index 0 (the empty padding token); single-column metadata has no header.")
    expect(len(vectors) == len(words), "vectors.tsv needs one line per word in metadata.tsv.",
           len(words), len(vectors), "Skip the padding row in both files.")
    first = [float(x) for x in vectors[0].split("\t")]
    expect(np.allclose(first, _VECTORS[1]), "Each line of vectors.tsv is that word's vector, tab-separated.",
           _VECTORS[1].tolist(), vectors[0], "Use '\\t'.join(str(x) for x in vector).")
    passed("both TSV files line up and load in projector.tensorflow.org.")


def lstm_model(model: Any, sample_texts: list[str]) -> None:
    """Check a text model: masking Embedding, a Bidirectional LSTM, one sigmoid probability per text."""
    import keras
    import tensorflow as tf

    layers = list(model.layers)
    embeddings = [layer for layer in layers if isinstance(layer, keras.layers.Embedding)]
    expect(bool(embeddings), "The model needs an Embedding layer.", "keras.layers.Embedding",
           [type(layer).__name__ for layer in layers], "Put an Embedding after the TextVectorization layer.")
    expect(embeddings[0].mask_zero, "The Embedding should mask padding so the LSTM skips it.", "mask_zero=True",
           f"mask_zero={embeddings[0].mask_zero}", "Pass mask_zero=True to keras.layers.Embedding.")
    bidirectional = [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)]
    expect(bool(bidirectional) and isinstance(bidirectional[0].forward_layer, keras.layers.LSTM),
           "The model needs a bidirectional LSTM.", "keras.layers.Bidirectional(keras.layers.LSTM(units))",
           [type(layer).__name__ for layer in layers], "Wrap an LSTM layer in keras.layers.Bidirectional.")
    head = getattr(layers[-1], "activation", None)
    expect(head is keras.activations.sigmoid, "The last layer should turn a score into a probability.",
           "Dense(1, activation='sigmoid')", f"{type(layers[-1]).__name__} with activation {getattr(head, '__name__', None)}",
           "End with keras.layers.Dense(1, activation='sigmoid').")
    probs = np.asarray(model(tf.constant(sample_texts)))
    expect(probs.shape == (len(sample_texts), 1), "One output per review.", (len(sample_texts), 1), probs.shape,
           "End with keras.layers.Dense(1, activation='sigmoid').")
    expect(bool(np.all((probs >= 0) & (probs <= 1))), "Outputs should be probabilities in [0, 1].",
           "values in [0, 1]", probs.ravel()[:4], "Use activation='sigmoid' on the last Dense layer.")
    passed("raw strings in, one probability out, with padding masked.")


def most_confident_mistakes(fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Check `fn(y_true, probs, k)` returns the indices of the k most confidently wrong predictions."""
    y_true = np.array([1, 0, 1, 0, 1, 0])
    probs = np.array([0.9, 0.6, 0.2, 0.95, 0.45, 0.1])  # wrong: 1 (0.6), 2 (0.2), 3 (0.95), 4 (0.45)
    got = _call(fn, y_true, probs, 3)
    got = [int(i) for i in np.asarray(got).ravel()]
    expect(got == [3, 2, 1], "The three most confident mistakes, most confident first.", [3, 2, 1], got,
           "A mistake's confidence is |prob - 0.5| where (prob > 0.5) != label; sort those descending.")
    got = [int(i) for i in np.asarray(_call(fn, y_true, probs, 10)).ravel()]
    expect(got == [3, 2, 1, 4], "With k larger than the number of mistakes, return every mistake.",
           [3, 2, 1, 4], got, "Select the wrong predictions before slicing [:k]; never pad with correct ones.")
    passed("mistakes ranked by how sure the model was.")


# --- Lessons 03 and 04: pre-training and fine-tuning BERT ---------------------------------------


def mlm_targets(fn: Callable[[np.ndarray, np.ndarray, int], tuple]) -> None:
    """Check `fn(token_ids, selected, mask_id)` returns (masked inputs, labels, weights) for masked-LM training."""
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 3, 0, 0]])
    selected = np.array([[0, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=bool)
    got = _call(fn, ids, selected, 4)
    expect(isinstance(got, (tuple, list)) and len(got) == 3, "Return three arrays: (inputs, labels, weights).",
           "(inputs, labels, weights)", type(got).__name__, "End with `return inputs, labels, weights`.")
    inputs, labels, weights = (np.asarray(x) for x in got)
    expect(inputs.shape == ids.shape and labels.shape == ids.shape and weights.shape == ids.shape,
           "All three arrays have the shape of token_ids.", ids.shape,
           [inputs.shape, labels.shape, weights.shape], "Work element-wise with np.where.")
    expect(np.array_equal(inputs, [[2, 4, 8, 4, 3, 0], [2, 5, 4, 3, 0, 0]]),
           "Selected positions become the [MASK] id; every other token stays as it was.",
           [[2, 4, 8, 4, 3, 0], [2, 5, 4, 3, 0, 0]], inputs.tolist(), "inputs = np.where(selected, mask_id, token_ids)")
    expect(np.array_equal(labels * selected, ids * selected),
           "The label at a masked position is the original token, the word the model must guess.",
           (ids * selected).tolist(), (labels * selected).tolist(), "labels = np.where(selected, token_ids, 0)")
    expect(np.array_equal(weights.astype(float), selected.astype(float)),
           "The loss counts masked positions only: weight 1 there, 0 elsewhere.", selected.astype(int).tolist(),
           weights.tolist(), "weights = selected.astype('float32'); unmasked tokens are visible, so guessing them "
           "teaches nothing.")
    passed("masked positions hide the token, keep it as the label, and are the only ones the loss counts.")


def causal_mask(fn: Callable[[int], np.ndarray]) -> None:
    """Check `fn(length)` returns the [length, length] mask letting position i see positions 0..i only."""
    got = np.asarray(_call(fn, 4))
    expected = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    expect(got.shape == (4, 4), "One row per position (the query), one column per position it may look at.",
           (4, 4), got.shape, "Build a square [length, length] array.")
    expect(np.array_equal(got.astype(bool), expected),
           "Row i allows columns 0..i: a next-word model must not see the words it is predicting.",
           expected.astype(int).tolist(), got.astype(int).tolist(),
           "Lower-triangular ones, diagonal included: np.tril(np.ones((length, length), dtype=bool)).")
    expect(np.asarray(_call(fn, 1)).astype(bool).tolist() == [[True]], "A single token sees itself.", [[True]],
           np.asarray(_call(fn, 1)).tolist(), "Use `length` for both dimensions.")
    passed("each position sees itself and the past, never the future.")


def warmup_linear_decay(fn: Callable[[float, int, int], Any]) -> None:
    """Check `fn(peak, warmup_steps, total_steps)` gives a schedule: linear warm-up to peak, then linear decay to 0."""
    schedule = _call(fn, 1e-3, 10, 110)
    expect(callable(schedule), "Return a schedule: something optimizers can call with the step.",
           "a keras.optimizers.schedules.LearningRateSchedule", type(schedule).__name__,
           "Subclass keras.optimizers.schedules.LearningRateSchedule and define __call__(self, step).")
    steps = [0, 5, 10, 60, 110, 200]
    want = [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0]
    got = [float(np.asarray(schedule(step))) for step in steps]
    for step, w, g in zip(steps, want, got):
        phase = "warm-up: rises linearly from 0" if step < 10 else "decay: falls linearly to 0 at total_steps, then stays 0"
        expect(abs(g - w) <= 1e-6, f"Learning rate at step {step} ({phase}).", w, g,
               "peak * step / warmup before warmup_steps, then peak * (total - step) / (total - warmup), "
               "never below 0. Cast `step` to float32 first.")
    passed("warm-up then linear decay, as BERT was trained and fine-tuned.")


def unfreeze_top_layers(fn: Callable[[Any, int], None]) -> None:
    """Check `fn(backbone, n)` leaves only the top n transformer layers of a keras-hub BertBackbone trainable."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=3, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    _call(fn, backbone, 1)
    layers = backbone.transformer_layers
    expect(backbone.trainable, "The backbone itself stays trainable; freeze inside it.", "backbone.trainable == True",
           backbone.trainable, "Setting backbone.trainable = False freezes everything, top layers included.")
    flags = [layer.trainable for layer in layers]
    expect(flags == [False, False, True], "Only the top n transformer layers train (n=1 of 3 here).",
           [False, False, True], flags, "Loop over backbone.transformer_layers; the last n are the top ones.")
    embedding = backbone.get_layer("token_embedding")
    expect(not embedding.trainable, "The embeddings sit below every transformer layer, so they freeze too.",
           "token_embedding.trainable == False", embedding.trainable,
           "Freeze every layer of the backbone first, then unfreeze the top n transformer layers.")
    top = len(layers[-1].trainable_weights)
    expect(len(backbone.trainable_weights) == top,
           "Trainable weights are exactly those of the top layer.", top, len(backbone.trainable_weights),
           "Freeze all backbone.layers, then set trainable=True on backbone.transformer_layers[-n:].")
    _call(fn, backbone, 3)
    flags = [layer.trainable for layer in layers]
    expect(flags == [True, True, True], "With n equal to the depth every transformer layer trains.",
           [True, True, True], flags, "Unfreeze layers[-n:], and re-freeze the others each call.")
    passed("the bottom of the encoder is frozen and its top n layers train.")


# --- Lesson 05: fine-tuning an ImageNet CNN on photos ----------------------------------------------


def scratch_cnn(model: Any, image_size: int) -> None:
    """Check a from-scratch CNN: [0, 1] RGB images in, stacked Conv2D + pooling, one sigmoid probability out."""
    import keras

    layers = [layer for layer in getattr(model, "_flatten_layers", lambda: model.layers)() if layer is not model]
    names = [type(layer).__name__ for layer in layers]
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    expect(len(convs) >= 3, "A VGG-style CNN stacks at least three convolution blocks.", ">= 3 Conv2D layers",
           f"{len(convs)} Conv2D in {names}", "Repeat Conv2D(filters, 3, padding='same', activation='relu') + "
           "MaxPooling2D, doubling the filters each block.")
    pools = [layer for layer in layers if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                                                             keras.layers.GlobalAveragePooling2D,
                                                             keras.layers.GlobalMaxPooling2D))]
    expect(len(pools) >= 2, "Pooling shrinks the feature maps between blocks.", ">= 2 pooling layers", names,
           "Put keras.layers.MaxPooling2D() after each convolution block.")
    filters = [layer.filters for layer in convs]
    expect(filters[-1] > filters[0], "Deeper blocks see larger regions and need more filters.",
           "filters growing with depth, e.g. [32, 64, 128]", filters, "Double the filters in each block.")
    x = np.random.default_rng(0).random((2, image_size, image_size, 3)).astype("float32")
    probs = np.asarray(model(x, training=False))
    expect(probs.shape == (2, 1), "One output per image.", (2, 1), probs.shape,
           "End with keras.layers.Dense(1, activation='sigmoid').")
    expect(bool(np.all((probs >= 0) & (probs <= 1))), "Outputs should be probabilities in [0, 1].",
           "values in [0, 1]", probs.ravel(), "Use activation='sigmoid' on the last Dense layer.")
    passed(f"{len(convs)} convolutions with filters {filters}, one probability per image.")


def augmentation(layer: Any, image_size: int) -> None:
    """Check an augmentation layer: identity at inference, random but shape- and range-preserving in training."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((4, image_size, image_size, 3)).astype("float32")
    x[:, :, : image_size // 2] *= 0.2  # left half darker: a horizontal flip shows
    expect(isinstance(layer, keras.layers.Layer), "build_augmentation should return a Keras layer (or Sequential).",
           "keras.Sequential([...])", type(layer).__name__, "Return keras.Sequential([RandomFlip(...), ...]).")
    same = np.asarray(layer(x, training=False))
    expect(same.shape == x.shape and np.allclose(same, x, atol=1e-5),
           "At inference (validation, test, predict) augmentation must leave images untouched.",
           "the input unchanged", "changed images" if same.shape == x.shape else same.shape,
           "Use keras.layers.Random* layers: they only act when training=True.")
    first = np.asarray(layer(x, training=True))
    second = np.asarray(layer(x, training=True))
    expect(first.shape == x.shape, "Augmentation keeps the image size.", x.shape, first.shape,
           "Crop-like layers must give back the same size (RandomZoom and RandomRotation do).")
    expect(not np.allclose(first, x, atol=1e-3) and not np.allclose(first, second, atol=1e-3),
           "In training each call should give a new random variant.", "different outputs per call",
           "unchanged or identical outputs", "Add at least RandomFlip('horizontal') and RandomRotation(0.05).")
    expect(float(first.min()) >= -0.05 and float(first.max()) <= 1.05, "Pixels should stay in [0, 1].",
           "[0, 1]", (round(float(first.min()), 3), round(float(first.max()), 3)),
           "Avoid RandomContrast/RandomBrightness ranges that leave [0, 1], or pass value_range=(0, 1).")
    passed("random variants in training, the original image at inference.")


def learning_rate_scaling(fn: Callable[[float, int, int], float]) -> None:
    """Check `fn(base_lr, base_batch, global_batch)` applies the linear scaling rule."""
    got = _call(fn, 1e-3, 32, 256)
    expect(np.isclose(got, 8e-3), "Eight times the batch gets eight times the learning rate.", 8e-3, got,
           "Multiply base_lr by global_batch / base_batch.")
    got = _call(fn, 2e-5, 32, 16)
    expect(np.isclose(got, 1e-5), "Half the batch, half the learning rate.", 1e-5, got,
           "The rule works both ways: return base_lr * global_batch / base_batch.")
    passed("the learning rate follows the global batch size.")


def cluster_config(fn: Callable[[list[str], int], dict]) -> None:
    """Check `fn(worker_addresses, index)` builds the TF_CONFIG that worker `index` needs."""
    addresses = ["machine-a:12345", "machine-b:12345"]
    got = _call(fn, addresses, 1)
    expected = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": 1}}
    expect(isinstance(got, dict), "TF_CONFIG is a dict (serialised with json.dumps into the environment).",
           expected, got, "Return a dict with the keys 'cluster' and 'task'.")
    expect(got.get("cluster") == expected["cluster"], "Every worker lists the whole cluster, in the same order.",
           expected["cluster"], got.get("cluster"), "Use {'worker': worker_addresses} for 'cluster'.")
    expect(got.get("task") == expected["task"], "The task says which worker this process is.",
           expected["task"], got.get("task"), "Use {'type': 'worker', 'index': index} for 'task'.")
    passed("the same cluster everywhere, a different task index per machine.")


def decoded_images(fn: Callable[[Any, int], Any]) -> None:
    """Check `fn(encoded, size)` turns a batch of encoded PNG/JPEG bytes into [0, 1] float images of `size`."""
    import io

    import tensorflow as tf
    from PIL import Image

    pixels = np.zeros((20, 30, 3), "uint8")
    pixels[:, :15] = 255  # left half white
    encoded = []
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt)
        encoded.append(buffer.getvalue())
    got = np.asarray(_call(fn, tf.constant(encoded), 8))
    expect(got.shape == (2, 8, 8, 3), "One resized RGB image per encoded string.", (2, 8, 8, 3), got.shape,
           "tf.map_fn over the batch: tf.io.decode_image(b, channels=3, expand_animations=False), then tf.image.resize.")
    expect(got.dtype == np.float32 and 0.0 <= got.min() and got.max() <= 1.0, "Pixels as float32 in [0, 1].",
           "float32 in [0, 1]", f"{got.dtype} in [{got.min():.2f}, {got.max():.2f}]", "Divide by 255.0 after resizing.")
    expect(got[:, :, 0].mean() > 0.9 and got[:, :, -1].mean() < 0.1, "The image content must survive: left white, right black.",
           "left column ~1, right column ~0", (round(float(got[:, :, 0].mean()), 2), round(float(got[:, :, -1].mean()), 2)),
           "Resize the decoded image; do not crop or transpose it.")
    passed("encoded bytes in, model-ready images out: the preprocessing now travels with the model.")


def serving_request(fn: Callable[[list[bytes]], dict]) -> None:
    """Check `fn(list_of_bytes)` builds a TF Serving row-format request with b64-wrapped binary values."""
    import base64
    import json

    got = _call(fn, [b"\xff\xd8first", b"\x89PNGsecond"])
    expect(isinstance(got, dict) and list(got) == ["instances"], 'The body is {"instances": [...]} (row format).',
           {"instances": ["..."]}, got if not isinstance(got, dict) else list(got), 'Return {"instances": [...]}.')
    instances = got["instances"]
    expect(all(isinstance(i, dict) and list(i) == ["b64"] for i in instances),
           'JSON cannot carry raw bytes: TF Serving wants each binary value as {"b64": "<base64 text>"}.',
           [{"b64": "..."}] * 2, instances, "Use {'b64': base64.b64encode(data).decode('ascii')}.")
    decoded = [base64.b64decode(i["b64"]) for i in instances]
    expect(decoded == [b"\xff\xd8first", b"\x89PNGsecond"], "Each value must decode back to the original bytes, in order.",
           "the same bytes", decoded, "Encode every image once, in the order given.")
    json.dumps(got)  # must be JSON-serialisable
    passed("a request TensorFlow Serving (and kitlib.serving) understands.")


# Lesson 07: compression. Magnitudes with no ties, signs mixed so |w| matters, not w.
_PRUNE_WEIGHTS = np.array([[0.5, -0.1], [2.0, -0.3], [0.05, -1.0]], dtype=np.float32)


def magnitude_mask(fn: Callable[[np.ndarray, float], np.ndarray]) -> None:
    """Check `fn(weights, sparsity)` zeroes the round(sparsity * size) smallest |weights| and keeps the shape."""
    got = _call(fn, _PRUNE_WEIGHTS.copy(), 0.5)
    got = np.asarray(got)
    expect(got.shape == _PRUNE_WEIGHTS.shape, "The mask has the shape of the weights.", _PRUNE_WEIGHTS.shape,
           got.shape, "Reshape the flat mask with `.reshape(weights.shape)`.")
    expected = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    expect(np.array_equal(got.astype(np.float32), expected),
           "At sparsity 0.5, the 3 weights of smallest magnitude (-0.1, 0.05, -0.3) are pruned; -1.0 is kept.",
           expected.tolist(), got.tolist(),
           "Sort by np.abs(weights), not by the signed values; zero the first round(sparsity * size).")
    none = np.asarray(_call(fn, _PRUNE_WEIGHTS.copy(), 0.0))
    expect(np.array_equal(none, np.ones_like(_PRUNE_WEIGHTS)), "Sparsity 0 prunes nothing.", "all ones",
           none.tolist(), "With n = 0, no weight should be zeroed (beware `order[:-0]`-style slices).")
    third = np.asarray(_call(fn, _PRUNE_WEIGHTS.copy(), 1 / 3))
    expect(int((third == 0).sum()) == 2, "Sparsity 1/3 of 6 weights prunes round(2.0) = 2.", 2,
           int((third == 0).sum()), "Use int(round(sparsity * weights.size)).")
    passed("the smallest-magnitude weights are masked, whatever their sign.")


def distillation_loss(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check `fn(teacher_logits, student_logits, T)` is T² · mean BCE(sigmoid(t/T), sigmoid(s/T))."""
    teacher = np.array([[2.0], [-1.0], [4.0]], dtype=np.float32)
    student = np.array([[0.0], [0.5], [1.0]], dtype=np.float32)

    def reference(t: np.ndarray, s: np.ndarray, temperature: float) -> float:
        q, p = 1 / (1 + np.exp(-t / temperature)), 1 / (1 + np.exp(-s / temperature))
        return float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))) * temperature ** 2)

    got = _call(fn, teacher, student, 2.0)
    value = float(np.asarray(got))
    expected = reference(teacher, student, 2.0)
    expect(np.ndim(np.asarray(got)) == 0, "The loss is one number for the batch.", "a scalar",
           f"shape {np.shape(np.asarray(got))}", "Average over the batch with keras.ops.mean.")
    if abs(value - expected / 4) < 1e-4:
        hint = "Multiply by temperature ** 2 (it keeps gradients on the hard-label loss's scale)."
    elif abs(value - reference(teacher * 2, student, 2.0)) < 1e-4 or abs(value - reference(teacher, student * 2, 2.0)) < 1e-4:
        hint = "Divide both the teacher's and the student's logits by the temperature."
    else:
        hint = ("soft targets = sigmoid(teacher_logits / T); compare them with student_logits / T using "
                "binary_crossentropy(..., from_logits=True); mean; times T ** 2.")
    expect(abs(value - expected) < 1e-4, "The distillation loss at T = 2 on a known batch.", round(expected, 5),
           round(value, 5), hint)
    same = float(np.asarray(_call(fn, teacher, teacher, 1.0)))
    expect(abs(same - reference(teacher, teacher, 1.0)) < 1e-4, "At T = 1 with student = teacher, the loss is "
           "the entropy of the teacher's predictions (its minimum).", round(reference(teacher, teacher, 1.0), 5),
           round(same, 5), "Use from_logits=True on the student's (scaled) logits.")
    passed("temperature-softened targets, scaled by T², averaged over the batch.")


# --- Lesson 06: choosing a model -------------------------------------------------------------------

# Five models: (accuracy, latency ms). C is slower and less accurate than B: dominated. E ties A on latency
# but is less accurate: dominated. A, B and D each win on something.
_CANDIDATES = [
    {"model": "A", "accuracy": 0.80, "latency_b1_ms": 2.0, "disk_mb": 1.0},
    {"model": "B", "accuracy": 0.88, "latency_b1_ms": 10.0, "disk_mb": 20.0},
    {"model": "C", "accuracy": 0.85, "latency_b1_ms": 30.0, "disk_mb": 5.0},
    {"model": "D", "accuracy": 0.91, "latency_b1_ms": 60.0, "disk_mb": 90.0},
    {"model": "E", "accuracy": 0.78, "latency_b1_ms": 2.0, "disk_mb": 0.5},
]


def pareto_front(fn: Callable[[list[dict]], list[str]]) -> None:
    """Check `fn(rows)` names the models no other model beats on both accuracy and latency, fastest first."""
    got = _call(fn, [dict(row) for row in _CANDIDATES])
    expect(isinstance(got, (list, tuple)), "pareto_front should return a list of model names.", ["A", "B", "D"],
           type(got).__name__, "Return [row['model'] for row in front].")
    got = list(got)
    expect("C" not in got, "C is dominated: B is both faster (10 ms < 30 ms) and more accurate (0.88 > 0.85).",
           "no 'C'", got, "Drop a model when another one is at least as fast AND at least as accurate, and "
           "strictly better on one of the two.")
    expect("E" not in got, "E is dominated: A is as fast (2 ms) and more accurate.", "no 'E'", got,
           "A tie on latency is not a win: 'at least as good on both, strictly better on one' dominates.")
    expect(sorted(got) == ["A", "B", "D"], "A (fastest), B and D (most accurate) are each best at something.",
           ["A", "B", "D"], got, "Keep every model that no other model dominates.")
    expect(got == ["A", "B", "D"], "List the front from fastest to slowest, the order you read it on the plot.",
           ["A", "B", "D"], got, "Sort the front by row['latency_b1_ms'].")
    single = list(_call(fn, [dict(_CANDIDATES[2])]))
    expect(single == ["C"], "A lone model is on its own front.", ["C"], single, "Nothing dominates it.")
    passed("the front keeps only models that are best at some trade-off.")


def pick_model(fn: Callable[..., str | None]) -> None:
    """Check `fn(rows, max_latency_ms, max_disk_mb)` returns the most accurate model within both budgets."""
    rows = [dict(row) for row in _CANDIDATES]
    cases = [((100.0, 100.0), "D", "With room for everything, take the most accurate."),
             ((20.0, 100.0), "B", "A 20 ms latency budget rules out C and D; B is the most accurate left."),
             ((100.0, 10.0), "C", "A 10 MB size budget (a mobile app) rules out B and D; C beats A and E."),
             ((5.0, 0.8), "E", "Only E fits 5 ms and 0.8 MB."),
             ((1.0, 100.0), None, "Nothing runs in 1 ms: say so with None rather than break the budget.")]
    for (latency, disk), want, why in cases:
        got = _call(fn, rows, max_latency_ms=latency, max_disk_mb=disk)
        expect(got == want, why + f" (max_latency_ms={latency}, max_disk_mb={disk})", want, got,
               "Keep rows with latency_b1_ms <= max_latency_ms and disk_mb <= max_disk_mb, then return the "
               "'model' of the one with the highest accuracy, or None when none is left.")
    passed("the most accurate model that fits the budget, and None when nothing does.")


# --- Lesson 08: hyperparameter search ---------------------------------------------------------------


def search_space(fn: Callable[[Any], dict]) -> None:
    """Check `fn(hp)` declares learning rate (log scale), dropout, batch size and unfreezing, and returns them."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    got = _call(fn, hp)
    expect(isinstance(got, dict), "search_space should return a dict of the chosen values.",
           "{'learning_rate': ..., 'dropout': ..., 'batch_size': ..., 'unfreeze': ...}", type(got).__name__,
           "Return dict(learning_rate=..., dropout=..., batch_size=..., unfreeze=...).")
    want = {"learning_rate", "dropout", "batch_size", "unfreeze"}
    expect(set(got) == want, "Four knobs are searched.", sorted(want), sorted(got), "Use exactly these keys.")
    space = {p.name: p for p in hp.space}
    expect(want <= set(space), "Each knob must be declared on `hp` under its own name, so the tuner can vary it.",
           sorted(want), sorted(space), "e.g. hp.Float('learning_rate', ...), hp.Choice('batch_size', ...).")
    lr = space["learning_rate"]
    expect(isinstance(lr, keras_tuner.engine.hyperparameters.Float) and lr.sampling == "log",
           "Learning rates matter by orders of magnitude: sample them on a log scale.",
           "hp.Float('learning_rate', 1e-5, 1e-2, sampling='log')",
           f"{type(lr).__name__} with sampling={getattr(lr, 'sampling', None)}", "Pass sampling='log'.")
    expect(1e-6 <= lr.min_value <= 1e-4 and 1e-3 <= lr.max_value <= 1e-1,
           "The range should span fine-tuning rates (1e-5) to head-training rates (1e-2).", "about [1e-5, 1e-2]",
           [lr.min_value, lr.max_value], "hp.Float('learning_rate', 1e-5, 1e-2, sampling='log')")
    dropout = space["dropout"]
    expect(getattr(dropout, "min_value", -1) >= 0 and getattr(dropout, "max_value", 1) <= 0.8,
           "Dropout is a fraction: keep it within [0, 0.8].", "e.g. hp.Float('dropout', 0.0, 0.5, step=0.1)",
           [getattr(dropout, "min_value", None), getattr(dropout, "max_value", None)], "Use a range inside [0, 0.8].")
    batch = space["batch_size"]
    values = list(getattr(batch, "values", []))
    expect(isinstance(batch, keras_tuner.engine.hyperparameters.Choice) and len(values) >= 2
           and all(int(v) > 0 for v in values), "Batch size is one of a few discrete values.",
           "hp.Choice('batch_size', [16, 32, 64])", f"{type(batch).__name__} {values}",
           "Use hp.Choice with at least two positive sizes.")
    unfreeze = space["unfreeze"]
    values = list(getattr(unfreeze, "values", [])) or [getattr(unfreeze, "min_value", None)]
    expect(0 in values, "Keeping the whole backbone frozen (unfreeze 0) must stay a candidate: it is often best "
           "with little data.", "0 among the choices", values, "e.g. hp.Choice('unfreeze', [0, 3, 12, 30]).")
    expect(got["learning_rate"] == hp.get("learning_rate") and got["unfreeze"] == hp.get("unfreeze"),
           "Return the values `hp` chose, so the model is built with what the tuner records.",
           {"learning_rate": hp.get("learning_rate"), "unfreeze": hp.get("unfreeze")},
           {"learning_rate": got["learning_rate"], "unfreeze": got["unfreeze"]},
           "Return the results of the hp.Float/hp.Choice calls themselves.")
    fixed = keras_tuner.HyperParameters()
    fixed.Fixed("learning_rate", 3e-4)
    got = _call(fn, fixed)
    expect(got["learning_rate"] == 3e-4, "When the tuner fixes a value, the function must use it.", 3e-4,
           got["learning_rate"], "Read values only from hp: do not hard-code them.")
    passed("four knobs declared, learning rate on a log scale, frozen backbone still a candidate.")


def best_so_far(fn: Callable[[list], list]) -> None:
    """Check `fn(scores)` returns the running maximum of trial scores, carrying over failed (None/NaN) trials."""
    got = _call(fn, [0.6, 0.55, 0.7, 0.65, 0.8])
    got = [float(x) for x in got]
    expect(got == [0.6, 0.6, 0.7, 0.7, 0.8], "After each trial, the best score seen so far.",
           [0.6, 0.6, 0.7, 0.7, 0.8], got, "Keep a running maximum: np.maximum.accumulate, or a loop with max().")
    got = [float(x) for x in _call(fn, [None, 0.5, float("nan"), 0.4])]
    expect(np.isnan(got[0]) and got[1:] == [0.5, 0.5, 0.5], "Failed trials (None or NaN) change nothing; before the "
           "first success there is no best yet (NaN).", [float("nan"), 0.5, 0.5, 0.5], got,
           "Treat None and NaN as 'no score': skip them when updating the maximum, start from NaN.")
    expect(list(_call(fn, [])) == [], "No trials, no curve.", [], _call(fn, []), "Return an empty list.")
    passed("a best-so-far curve that never goes down and ignores failed trials.")


# --- Lesson 11: multi-class classification -----------------------------------------------------------

# Three classes, 10 examples: class 2 is never predicted. Per-class F1: 6/7, 1/2, 0.
_F1_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
_F1_PRED = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
_F1_CLASSES = (6 / 7, 0.5, 0.0)


def vgg_classifier(model: Any, image_size: int, n_classes: int) -> None:
    """Check a VGG-style k-class CNN: blocks of two 3x3 convolutions, a softmax over `n_classes` out."""
    import keras

    layers = [layer for layer in getattr(model, "_flatten_layers", lambda: model.layers)() if layer is not model]
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in layers if isinstance(layer, keras.layers.MaxPooling2D)]
    expect(len(convs) >= 6 and len(pools) >= 3, "VGG stacks blocks of two 3x3 convolutions, each block ending in "
           "max-pooling.", ">= 3 blocks: >= 6 Conv2D and >= 3 MaxPooling2D",
           f"{len(convs)} Conv2D, {len(pools)} MaxPooling2D",
           "Per block: Conv2D(f, 3, padding='same', activation='relu') twice, then MaxPooling2D(); f = 32, 64, 128.")
    last = layers[-1]
    units, activation = getattr(last, "units", None), getattr(last, "activation", None)
    expect(units == n_classes, "A k-class classifier ends in one unit per class.", f"Dense({n_classes}, ...)",
           f"{type(last).__name__} with units={units}", "End with keras.layers.Dense(n_classes, activation='softmax').")
    expect(activation is keras.activations.softmax, "Softmax turns the k scores into probabilities that sum to 1 "
           "(sigmoid would score each class on its own).", "activation='softmax'",
           f"activation={getattr(activation, '__name__', activation)}", "Pass activation='softmax' to the last Dense.")
    x = np.random.default_rng(0).random((2, image_size, image_size, 3)).astype("float32")
    probs = np.asarray(model(x, training=False), dtype=np.float64)
    expect(probs.shape == (2, n_classes), "One probability per class for each image.", (2, n_classes), probs.shape,
           "Flatten (or pool) the last feature maps before the Dense layers.")
    expect(bool(np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)), "Each row of probabilities sums to 1.",
           [1.0, 1.0], probs.sum(axis=1).round(4).tolist(), "Use activation='softmax' on the last Dense layer.")
    passed(f"{len(convs)} convolutions in {len(pools)} blocks, a softmax over {n_classes} classes.")


def macro_f1(fn: Callable[[np.ndarray, np.ndarray, int], float]) -> None:
    """Check `fn(y_true, y_pred, n_classes)` averages the per-class F1 over every class, a never-predicted one too."""
    got = _call(fn, _F1_TRUE, _F1_PRED, 3)
    try:
        got = float(got)
    except (TypeError, ValueError):
        expect(False, "macro_f1 returns one number.", "a float such as 0.45", type(got).__name__,
               "Return the mean of the per-class F1 scores: float(np.mean(f1)).")
    want = float(np.mean(_F1_CLASSES))
    accuracy = float(np.mean(_F1_TRUE == _F1_PRED))
    precision, recall = np.mean([0.75, 0.5, 0.0]), np.mean([1.0, 0.5, 0.0])
    mistakes = [
        (np.isnan(got), "A class that is never predicted has precision 0/0: its F1 counts as 0, not NaN.",
         "Divide with np.divide(..., out=np.zeros_like(...), where=denominator > 0), or treat 0/0 as 0."),
        (np.isclose(got, accuracy), "That is the micro average (pooled over all examples, equal to accuracy for "
         "single-label data): macro averages the per-class F1, so every class weighs the same.",
         "Compute F1 for each class from its own TP, FP and FN, then take the plain mean."),
        (np.isclose(got, np.mean(_F1_CLASSES[:2])), "Class 2 is never predicted, so it is missing from "
         "np.unique(y_pred): the macro average must still count it, with F1 0.",
         "Loop over range(n_classes), not over the labels that happen to appear in the predictions."),
        (np.isclose(got, np.average(_F1_CLASSES, weights=np.bincount(_F1_TRUE))), "That is the support-weighted "
         "average: macro gives every class the same weight.", "Take the plain mean of the per-class F1 scores."),
        (np.isclose(got, 2 * precision * recall / (precision + recall)), "That is the F1 of the averaged precision "
         "and recall: macro-F1 averages the per-class F1 scores instead.",
         "Compute F1 per class first, then average."),
    ]
    for wrong, why, hint in mistakes:
        expect(not wrong, why, round(want, 4), round(got, 4) if not np.isnan(got) else got, hint)
    expect(np.isclose(got, want), "Per-class F1 here is 6/7, 1/2 and 0; macro-F1 is their mean.", round(want, 4),
           round(got, 4), "F1 = 2PR / (P + R) per class, with P = TP / predicted and R = TP / actual.")
    perfect = float(_call(fn, np.arange(10) % 4, np.arange(10) % 4, 4))
    expect(np.isclose(perfect, 1.0), "Perfect predictions give macro-F1 1.", 1.0, perfect,
           "Check the per-class F1 formula: 2 * precision * recall / (precision + recall).")
    passed("the per-class F1 averaged over every class, the never-predicted one included.")

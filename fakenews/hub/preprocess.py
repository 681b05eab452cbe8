"""An offline module with the interface of tfhub.dev `bert_en_uncased_preprocess/3`.

The pipeline has no internet, so instead of downloading the TF Hub preprocessing model
we write a SavedModel with the same interface from the WordPiece vocabulary on disk.
Code written against it (`hub.KerasLayer`, `preprocessor.tokenize`,
`preprocessor.bert_pack_inputs`) then runs unchanged.

Loading the module needs `import tensorflow_text` first: its graph uses the tokenizer
ops registered by that package (the same holds for the TF Hub original).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text as text

from fakenews.errors import PipelineError
from fakenews.hub.saving import save_reproducibly

_STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="sentences")


def build_preprocess_module(
    vocab_file: Path | str, out_dir: Path | str, seq_length: int = 128, lowercase: bool = True
) -> None:
    """Write a SavedModel with the interface of tfhub.dev `bert_en_uncased_preprocess/3`.

    The vocabulary is copied into the SavedModel's assets, so the module keeps working
    once the checkpoint folder is gone.
    """
    vocab_file = Path(vocab_file)
    special_ids = _special_token_ids(vocab_file)
    if seq_length < 3:
        raise PipelineError(f"seq_length must be at least 3 ([CLS] x [SEP]), got {seq_length}")
    save_reproducibly(_preprocessor(vocab_file, seq_length, lowercase, special_ids), out_dir)


def _special_token_ids(vocab_file: Path) -> dict[str, int]:
    """Special-token ids = line numbers, as the tokenizer's table numbers every token.

    All four must exist: packing inserts [CLS]/[SEP]/[PAD], and WordPiece emits [UNK].
    """
    if not vocab_file.is_file():
        raise PipelineError(f"{vocab_file}: vocabulary file not found")
    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    ids = {}
    for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"):
        if token not in tokens:
            raise PipelineError(f"{vocab_file}: vocabulary has no {token} token")
        ids[token] = tokens.index(token)
    return ids


def _preprocessor(
    vocab_file: Path, default_seq_length: int, lowercase: bool, special_ids: dict[str, int]
) -> tf.Module:
    """The object graph to save: a tokenizer owning the vocab table, plus three functions."""
    module = tf.Module(name="bert_preprocess")
    module.tokenizer = text.BertTokenizer(
        _vocab_table(vocab_file), lower_case=lowercase, token_out_type=tf.int32
    )

    def pack(segments: list[tf.RaggedTensor], seq_length: tf.Tensor) -> dict[str, tf.Tensor]:
        return _bert_pack_inputs(segments, seq_length, special_ids)

    # autograph=False throughout: the code has no tensor-dependent Python control flow,
    # and converting tf.text's internals with autograph triples the build time.
    @tf.function(input_signature=[_STRINGS_SPEC], autograph=False)
    def tokenize(sentences: tf.Tensor) -> tf.RaggedTensor:
        return module.tokenizer.tokenize(sentences)

    # seq_length is traced as a scalar tensor (as in the TF Hub module), so one saved
    # function serves any length a caller passes, not just the ones traced here.
    @tf.function(autograph=False)
    def bert_pack_inputs(
        segments: list[tf.RaggedTensor], seq_length: int | tf.Tensor = default_seq_length
    ) -> dict[str, tf.Tensor]:
        return pack(segments, seq_length)

    @tf.function(input_signature=[_STRINGS_SPEC], autograph=False)
    def preprocess(sentences: tf.Tensor) -> dict[str, tf.Tensor]:
        return pack([module.tokenizer.tokenize(sentences)], default_seq_length)

    # Saved functions cannot be retraced after loading, so every input structure the
    # TF Hub module accepts is traced here, in a fixed order. (Saving retraces these in
    # its own context, in the same order; functions with an input_signature need no
    # trace here at all.)
    for num_segments in (1, 2):
        for ragged_rank in (1, 2):
            segment_spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32, ragged_rank)
            bert_pack_inputs.get_concrete_function(
                [segment_spec] * num_segments, seq_length=tf.TensorSpec([], tf.int32)
            )
    module.tokenize = tokenize
    module.bert_pack_inputs = bert_pack_inputs
    module.__call__ = preprocess
    return module


def _vocab_table(vocab_file: Path) -> tf.lookup.StaticHashTable:
    """token -> line number; the file becomes a SavedModel asset through the initializer."""
    initializer = tf.lookup.TextFileInitializer(
        str(vocab_file),
        key_dtype=tf.string,
        key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        value_dtype=tf.int64,
        value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
    )
    # -1 marks unknown words; WordPiece then emits [UNK] for them. Anonymous, because a
    # shared table's name embeds the vocab's absolute path, which would make the module's
    # bytes depend on where the checkpoint folder happens to live.
    return tf.lookup.StaticHashTable(initializer, default_value=-1, experimental_is_anonymous=True)


def _bert_pack_inputs(
    segments: list[tf.RaggedTensor], seq_length: tf.Tensor | int, special_ids: dict[str, int]
) -> dict[str, tf.Tensor]:
    """[CLS] a [SEP] (b [SEP]), trimmed round-robin and padded to seq_length, as TF Hub does."""
    # Flatten [batch, (words), (wordpieces)] to [batch, (wordpieces)].
    segments = [s.merge_dims(1, -1) if s.shape.rank > 2 else s for s in segments]
    seq_length = tf.cast(seq_length, tf.int32)
    num_special_tokens = len(segments) + 1
    tf.debugging.assert_greater(
        seq_length, num_special_tokens, message="seq_length too small for [CLS]/[SEP] tokens"
    )
    trimmed = text.RoundRobinTrimmer(seq_length - num_special_tokens).trim(segments)
    word_ids, type_ids = text.combine_segments(
        trimmed,
        start_of_sequence_id=special_ids["[CLS]"],
        end_of_segment_id=special_ids["[SEP]"],
    )
    input_word_ids, _ = text.pad_model_inputs(word_ids, seq_length, pad_value=special_ids["[PAD]"])
    input_type_ids, input_mask = text.pad_model_inputs(type_ids, seq_length, pad_value=0)
    # pad_model_inputs loses the static shape; restore [batch, seq_length].
    shape = tf.stack([segments[0].nrows(out_type=tf.int32), seq_length])
    return {
        "input_word_ids": tf.reshape(tf.cast(input_word_ids, tf.int32), shape),
        "input_mask": tf.reshape(tf.cast(input_mask, tf.int32), shape),
        "input_type_ids": tf.reshape(tf.cast(input_type_ids, tf.int32), shape),
    }

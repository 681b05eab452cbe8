"""Offline TF Hub-style BERT modules built from a local Hugging Face BERT checkpoint.

The pipeline has no internet, so instead of downloading `bert_en_uncased_preprocess`
and a BERT encoder from tfhub.dev we write SavedModels with the same interfaces from
weights already on disk. Code written against the TF Hub modules (`hub.KerasLayer`,
`preprocessor.tokenize`, `preprocessor.bert_pack_inputs`) then runs unchanged.

Loading the preprocessing module needs `import tensorflow_text` first: its graph uses
the tokenizer ops registered by that package (the same holds for the TF Hub original).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text as text
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from safetensors import SafetensorError
from safetensors.numpy import load_file
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from stages.lib.errors import PipelineError
from stages.lib.io import atomic_path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"

# Hugging Face BertForPreTraining & co. prefix the BertModel tensors with this.
_HF_MODEL_PREFIX = "bert."
_REQUIRED_CONFIG_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "layer_norm_eps", "max_position_embeddings",
    "type_vocab_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
)
# Added to attention scores of padding positions; exp() of it underflows to 0 in
# float32, and it is the value Google's BERT and the TF Hub encoders use.
_MASKED_SCORE = -10000.0

_STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="sentences")
_ENCODER_INPUT_SPEC = {
    name: tf.TensorSpec([None, None], tf.int32, name=name)
    for name in ("input_word_ids", "input_mask", "input_type_ids")
}


# --------------------------------------------------------------------------- checkpoint


def load_bert_checkpoint(folder: Path | str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read config.json and model.safetensors of a HF BertModel, without PyTorch.

    Every tensor the encoder needs is checked for presence and shape here, so a wrong
    or truncated checkpoint fails with the file named rather than deep inside TF.
    """
    folder = Path(folder)
    config = _read_config(folder / CONFIG_FILE)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise PipelineError(f"{weights_path}: weights file not found")
    try:
        raw_weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise PipelineError(f"{weights_path}: not a readable safetensors file: {err}") from None
    weights = {name.removeprefix(_HF_MODEL_PREFIX): array for name, array in raw_weights.items()}
    _check_weights(weights, _expected_shapes(config), weights_path)
    return config, weights


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineError(f"{path}: BERT config file not found")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON: {err}") from None
    missing = [key for key in _REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise PipelineError(f"{path}: missing BERT setting(s) {', '.join(missing)}")
    # Only the exact (erf) GELU of the original BERT is implemented below.
    if config["hidden_act"] != "gelu":
        raise PipelineError(
            f"{path}: hidden_act {config['hidden_act']!r} is not supported, only 'gelu'"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise PipelineError(f"{path}: only absolute position embeddings are supported")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise PipelineError(f"{path}: hidden_size is not a multiple of num_attention_heads")
    return config


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> shape for every tensor the encoder uses (Linear weights are [out, in])."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for index in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{index}."
        dense_shapes = {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }
        for dense, shape in dense_shapes.items():
            shapes[f"{layer}{dense}.weight"] = shape
            shapes[f"{layer}{dense}.bias"] = shape[:1]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{layer}{norm}.weight"] = (hidden,)
            shapes[f"{layer}{norm}.bias"] = (hidden,)
    return shapes


def _check_weights(
    weights: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], source: Path
) -> None:
    missing = [name for name in shapes if name not in weights]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise PipelineError(f"{source}: missing tensor(s) {shown}; is this a BERT checkpoint?")
    wrong = [
        f"{name} is {weights[name].shape}, expected {shape}"
        for name, shape in shapes.items()
        if weights[name].shape != shape
    ]
    if wrong:
        raise PipelineError(
            f"{source}: tensor shapes do not match config.json: {'; '.join(wrong[:5])}"
        )


# --------------------------------------------------------------------------- preprocessing


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
    _save_reproducibly(_preprocessor(vocab_file, seq_length, lowercase, special_ids), out_dir)


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


# --------------------------------------------------------------------------- encoder


def build_encoder_module(checkpoint_folder: Path | str, out_dir: Path | str) -> None:
    """Write a SavedModel with the TF Hub BERT encoder interface, weights trainable.

    The root object follows the Reusable SavedModel API (`__call__` with a `training`
    argument, `variables`, `trainable_variables`, `regularization_losses`), which is
    what `hub.KerasLayer(path, trainable=True)` needs to fine-tune the weights.
    """
    config, weights = load_bert_checkpoint(checkpoint_folder)
    encoder = _BertEncoder(config, weights)
    # A plain trackable root: tf.Module reserves `variables` for a property, and
    # tf.train.Checkpoint would add a stray save_counter variable to the module.
    root = tf.__internal__.tracking.AutoTrackable()
    root.encoder = encoder

    @tf.function(autograph=False)  # `training` is a Python bool: no graph control flow
    def call(inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        return encoder(inputs, training=training)

    # Dropout ops traced under a global seed carry fixed op seeds, which TensorFlow's
    # op determinism (enabled by the training stages) requires of every random op.
    tf.random.set_seed(0)
    # Both Python values of `training`, in a fixed order (see _preprocessor on tracing).
    for training in (False, True):
        call.get_concrete_function(_ENCODER_INPUT_SPEC, training=training)
    root.__call__ = call
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    _save_reproducibly(root, out_dir)


class _Dense(tf.Module):
    """x @ kernel + bias, with the PyTorch [out, in] weight stored as a TF [in, out] kernel."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str, name: str) -> None:
        super().__init__(name=name)
        self.kernel = tf.Variable(weights[f"{prefix}.weight"].T, name="kernel")
        self.bias = tf.Variable(weights[f"{prefix}.bias"], name="bias")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        # [b, s, h] @ [h, k] would run as a batched matmul, about half the speed on CPU of
        # the plain 2-D MatMul over all b*s rows.
        rows = tf.reshape(x, [-1, tf.shape(x)[-1]])
        out_shape = tf.concat([tf.shape(x)[:-1], tf.shape(self.kernel)[1:]], axis=0)
        return tf.reshape(tf.matmul(rows, self.kernel) + self.bias, out_shape)


class _LayerNorm(tf.Module):
    """Layer normalisation over the last axis with BERT's epsilon."""

    def __init__(
        self, weights: dict[str, np.ndarray], prefix: str, epsilon: float, name: str
    ) -> None:
        super().__init__(name=name)
        self.gamma = tf.Variable(weights[f"{prefix}.weight"], name="gamma")
        self.beta = tf.Variable(weights[f"{prefix}.bias"], name="beta")
        self._epsilon = epsilon

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self._epsilon) * self.gamma + self.beta


def _dropout(x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x


class _TransformerLayer(tf.Module):
    """One post-LayerNorm BERT block: self-attention, then the GELU feed-forward network."""

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray], index: int) -> None:
        super().__init__(name=f"layer_{index}")
        prefix, eps = f"encoder.layer.{index}.", config["layer_norm_eps"]
        self.query = _Dense(weights, f"{prefix}attention.self.query", "query")
        self.key = _Dense(weights, f"{prefix}attention.self.key", "key")
        self.value = _Dense(weights, f"{prefix}attention.self.value", "value")
        self.attention_output = _Dense(
            weights, f"{prefix}attention.output.dense", "attention_output"
        )
        self.attention_norm = _LayerNorm(
            weights, f"{prefix}attention.output.LayerNorm", eps, "attention_norm"
        )
        self.intermediate = _Dense(weights, f"{prefix}intermediate.dense", "intermediate")
        self.output = _Dense(weights, f"{prefix}output.dense", "output")
        self.output_norm = _LayerNorm(weights, f"{prefix}output.LayerNorm", eps, "output_norm")
        self._num_heads = config["num_attention_heads"]
        self._hidden_dropout = config["hidden_dropout_prob"]
        self._attention_dropout = config["attention_probs_dropout_prob"]

    def __call__(self, x: tf.Tensor, attention_bias: tf.Tensor, training: bool) -> tf.Tensor:
        attended = self._self_attention(x, attention_bias, training)
        attended = _dropout(self.attention_output(attended), self._hidden_dropout, training)
        x = self.attention_norm(x + attended)
        inner = tf.nn.gelu(self.intermediate(x), approximate=False)
        return self.output_norm(x + _dropout(self.output(inner), self._hidden_dropout, training))

    def _self_attention(self, x: tf.Tensor, attention_bias: tf.Tensor, training: bool) -> tf.Tensor:
        batch, length, hidden = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        head_size = hidden // self._num_heads

        def split_heads(t: tf.Tensor) -> tf.Tensor:  # [b, s, h] -> [b, heads, s, h/heads]
            t = tf.reshape(t, [batch, length, self._num_heads, head_size])
            return tf.transpose(t, [0, 2, 1, 3])

        query, key, value = (split_heads(dense(x)) for dense in (self.query, self.key, self.value))
        scores = tf.matmul(query, key, transpose_b=True) / math.sqrt(head_size) + attention_bias
        probs = _dropout(tf.nn.softmax(scores, axis=-1), self._attention_dropout, training)
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
        return tf.reshape(context, [batch, length, hidden])


class _BertEncoder(tf.Module):
    """The BERT weights as trainable variables and the forward pass of HF BertModel."""

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        super().__init__(name="bert_encoder")
        self.word_embeddings = tf.Variable(
            weights["embeddings.word_embeddings.weight"], name="word_embeddings"
        )
        self.position_embeddings = tf.Variable(
            weights["embeddings.position_embeddings.weight"], name="position_embeddings"
        )
        self.type_embeddings = tf.Variable(
            weights["embeddings.token_type_embeddings.weight"], name="type_embeddings"
        )
        self.embedding_norm = _LayerNorm(
            weights, "embeddings.LayerNorm", config["layer_norm_eps"], "embedding_norm"
        )
        self.layers = [
            _TransformerLayer(config, weights, index)
            for index in range(config["num_hidden_layers"])
        ]
        self.pooler = _Dense(weights, "pooler.dense", "pooler")
        self._hidden_dropout = config["hidden_dropout_prob"]
        self._max_positions = config["max_position_embeddings"]

    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        word_ids, type_ids = inputs["input_word_ids"], inputs["input_type_ids"]
        length = tf.shape(word_ids)[1]
        tf.debugging.assert_less_equal(
            length, self._max_positions, message="sequence longer than max_position_embeddings"
        )
        x = (
            tf.gather(self.word_embeddings, word_ids)
            + self.position_embeddings[:length]
            + tf.gather(self.type_embeddings, type_ids)
        )
        x = _dropout(self.embedding_norm(x), self._hidden_dropout, training)
        # [b, s] mask -> [b, 1, 1, s] bias broadcast over heads and query positions.
        mask = tf.cast(inputs["input_mask"], x.dtype)[:, tf.newaxis, tf.newaxis, :]
        attention_bias = (1.0 - mask) * _MASKED_SCORE
        encoder_outputs = []
        for layer in self.layers:
            x = layer(x, attention_bias, training)
            encoder_outputs.append(x)
        pooled_output = tf.tanh(self.pooler(x[:, 0, :]))
        return {
            "pooled_output": pooled_output,
            "sequence_output": x,
            "encoder_outputs": encoder_outputs,
            "default": pooled_output,
        }


# --------------------------------------------------------------------------- reproducible saving

# Graph functions are named `<name>_<uid>` from a process-wide counter, e.g.
# `__inference_call_11256`, so the same module saved after other TF work gets other names.
_UID_SUFFIX = re.compile(r"^(?P<base>.*)_(?P<uid>\d+)$")


def _save_reproducibly(root: Any, out_dir: Path | str) -> None:
    """Save atomically, with content that depends only on the module, not on the process.

    DVC hashes the output folder: byte-identical rebuilds keep downstream stages cached.
    """
    with atomic_path(out_dir) as tmp:
        tf.saved_model.save(root, str(tmp))
        _number_functions_by_rank(tmp / "saved_model.pb")
        _rewrite_fingerprint(tmp)


def _number_functions_by_rank(saved_model_file: Path) -> None:
    """Replace each function's uid by its rank among the module's uids, and sort the library.

    Tracing order is fixed, so the ranks are the same in every build even though the
    uids are not. Every string field equal to an old name is a reference to it.
    """
    saved_model = saved_model_pb2.SavedModel.FromString(saved_model_file.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library
        numbered = sorted(
            (int(match["uid"]), match["base"], function.signature.name)
            for function in library.function
            if (match := _UID_SUFFIX.match(function.signature.name))
        )
        renames = {name: f"{base}_{rank}" for rank, (_, base, name) in enumerate(numbered)}
        _rename_strings(meta_graph, renames)
        functions = sorted(library.function, key=lambda function: function.signature.name)
        library.ClearField("function")
        library.function.extend(functions)
    saved_model_file.write_bytes(saved_model.SerializeToString(deterministic=True))


def _rename_strings(message: Message, renames: dict[str, str]) -> None:
    """Apply `renames` to every string field, map key and map value inside `message`."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _rename_map(value, field.message_type.fields_by_name["value"], renames)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                _rename_strings(item, renames)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [renames.get(item, item) for item in value]
            elif value in renames:
                setattr(message, field.name, renames[value])


def _rename_map(entries: Any, value_field: FieldDescriptor, renames: dict[str, str]) -> None:
    def renamed(item: Any) -> Any:
        return renames.get(item, item) if isinstance(item, str) else item

    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
        items = []
        for key, value in entries.items():
            _rename_strings(value, renames)
            copy = type(value)()
            copy.CopyFrom(value)
            items.append((renamed(key), copy))
        entries.clear()
        for key, value in items:
            entries[key].CopyFrom(value)
    else:
        items = [(renamed(key), renamed(value)) for key, value in entries.items()]
        entries.clear()
        entries.update(items)


def _rewrite_fingerprint(saved_model_dir: Path) -> None:
    """Recompute fingerprint.pb for the renamed graph, minus its random per-save uuid."""
    fingerprinting_utils.write_fingerprint(str(saved_model_dir))
    fingerprint_file = saved_model_dir / "fingerprint.pb"
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(fingerprint_file.read_bytes())
    fingerprint.ClearField("uuid")
    fingerprint_file.write_bytes(fingerprint.SerializeToString(deterministic=True))

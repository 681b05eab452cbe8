"""An offline module with the TF Hub BERT encoder interface, built from a local checkpoint.

The pipeline has no internet, so instead of downloading a BERT encoder from tfhub.dev we
write a SavedModel with the same interface (`input_word_ids`, `input_mask`,
`input_type_ids` in; `pooled_output`, `sequence_output`, `encoder_outputs` out) from
weights already on disk, readable top to bottom: embeddings, transformer layers, pooler.

The forward pass is written for oneDNN's graph fusions on CPU: each dense layer is a
MatMul + BiasAdd (+ GELU), which the grappler remapper runs as one fused kernel, and the
query, key and value projections are one matmul. Beside the TF Hub `__call__`, the module
carries `inference_bfloat16`: the same inference pass with every matmul (and the
attention between them) in bfloat16, while the residual stream and the layer norms stay
float32, so scoring can run at the bfloat16 matmul rate without float32 round trips
around each matmul (fakenews.precision).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from fakenews.errors import PipelineError
from fakenews.hub.checkpoint import load_bert_checkpoint
from fakenews.hub.saving import save_reproducibly

# Added to attention scores of padding positions; exp() of it underflows to 0 in
# float32, and it is the value Google's BERT and the TF Hub encoders use.
_MASKED_SCORE = -10000.0
_ENCODER_INPUT_SPEC = {
    name: tf.TensorSpec([None, None], tf.int32, name=name)
    for name in ("input_word_ids", "input_mask", "input_type_ids")
}


def build_encoder_module(
    checkpoint_folder: Path | str, out_dir: Path | str, num_layers: int | None = None
) -> None:
    """Write a SavedModel with the TF Hub BERT encoder interface, weights trainable.

    The root object follows the Reusable SavedModel API (`__call__` with a `training`
    argument, `variables`, `trainable_variables`, `regularization_losses`), which is
    what `hub.KerasLayer(path, trainable=True)` needs to fine-tune the weights.
    `num_layers` keeps only the first transformer layers (all by default): a shallower,
    faster encoder from the same checkpoint.
    """
    config, weights = load_bert_checkpoint(checkpoint_folder)
    available = config["num_hidden_layers"]
    if num_layers is not None:
        if not 1 <= num_layers <= available:
            raise PipelineError(
                f"embed.bert_layers must be between 1 and {available} (the "
                f"checkpoint's layers) or null for all, got {num_layers}"
            )
        config = {**config, "num_hidden_layers": num_layers}
    encoder = _BertEncoder(config, weights)
    # A plain trackable root: tf.Module reserves `variables` for a property, and
    # tf.train.Checkpoint would add a stray save_counter variable to the module.
    root = tf.__internal__.tracking.AutoTrackable()
    root.encoder = encoder

    @tf.function(autograph=False)  # `training` is a Python bool: no graph control flow
    def call(inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        return encoder(inputs, training=training)

    @tf.function(input_signature=[_ENCODER_INPUT_SPEC], autograph=False)
    def inference_bfloat16(inputs: dict[str, tf.Tensor]) -> dict[str, Any]:
        return encoder(inputs, training=False, compute_dtype=tf.bfloat16)

    # Dropout ops traced under a global seed carry fixed op seeds, which TensorFlow's
    # op determinism (enabled by the training stages) requires of every random op.
    tf.random.set_seed(0)
    # Both Python values of `training`, in a fixed order (see preprocess._preprocessor on tracing).
    for training in (False, True):
        call.get_concrete_function(_ENCODER_INPUT_SPEC, training=training)
    root.__call__ = call
    root.inference_bfloat16 = inference_bfloat16
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    save_reproducibly(root, out_dir)


class _Dense(tf.Module):
    """x @ kernel + bias on rows [tokens, in], with the PyTorch [out, in] weights stored as
    a TF [in, out] kernel; several checkpoint layers side by side make one wider kernel.

    It computes in the dtype of `x`. tf.nn.bias_add, not `+`: MatMul + BiasAdd (and a GELU
    after it) is the pattern oneDNN runs as one fused kernel.
    """

    def __init__(self, weights: dict[str, np.ndarray], prefixes: list[str], name: str) -> None:
        super().__init__(name=name)
        kernels = [weights[f"{prefix}.weight"].T for prefix in prefixes]
        biases = [weights[f"{prefix}.bias"] for prefix in prefixes]
        self.kernel = tf.Variable(np.concatenate(kernels, axis=1), name="kernel")
        self.bias = tf.Variable(np.concatenate(biases), name="bias")

    def __call__(self, rows: tf.Tensor) -> tf.Tensor:
        kernel, bias = (tf.cast(w, rows.dtype) for w in (self.kernel, self.bias))
        return tf.nn.bias_add(tf.matmul(rows, kernel), bias)


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
        return (x - mean) * (tf.math.rsqrt(variance + self._epsilon) * self.gamma) + self.beta


def _dropout(x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x


class _TransformerLayer(tf.Module):
    """One post-LayerNorm BERT block: self-attention, then the GELU feed-forward network.

    Rows are tokens ([batch * length, hidden]): every dense layer is a plain 2-D MatMul
    (a [b, s, h] @ [h, k] batched matmul runs at about half the speed on CPU). The
    residual stream `x` and the layer norms are float32; the matmuls, the attention and
    the GELU run in `compute_dtype`.
    """

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray], index: int) -> None:
        super().__init__(name=f"layer_{index}")
        prefix, eps = f"encoder.layer.{index}.", config["layer_norm_eps"]
        self.query_key_value = _Dense(
            weights,
            [f"{prefix}attention.self.{part}" for part in ("query", "key", "value")],
            "query_key_value",
        )
        self.attention_output = _Dense(
            weights, [f"{prefix}attention.output.dense"], "attention_output"
        )
        self.attention_norm = _LayerNorm(
            weights, f"{prefix}attention.output.LayerNorm", eps, "attention_norm"
        )
        self.intermediate = _Dense(weights, [f"{prefix}intermediate.dense"], "intermediate")
        self.output = _Dense(weights, [f"{prefix}output.dense"], "output")
        self.output_norm = _LayerNorm(weights, f"{prefix}output.LayerNorm", eps, "output_norm")
        self._num_heads = config["num_attention_heads"]
        self._hidden_dropout = config["hidden_dropout_prob"]
        self._attention_dropout = config["attention_probs_dropout_prob"]

    def __call__(
        self,
        x: tf.Tensor,
        attention_bias: tf.Tensor,
        length: tf.Tensor,
        training: bool,
        compute_dtype: tf.DType,
    ) -> tf.Tensor:
        lower = tf.cast(x, compute_dtype)
        attended = self._self_attention(lower, attention_bias, length, training)
        attended = _dropout(self.attention_output(attended), self._hidden_dropout, training)
        x = self.attention_norm(x + tf.cast(attended, x.dtype))
        inner = tf.nn.gelu(self.intermediate(tf.cast(x, compute_dtype)), approximate=False)
        out = _dropout(self.output(inner), self._hidden_dropout, training)
        return self.output_norm(x + tf.cast(out, x.dtype))

    def _self_attention(
        self, rows: tf.Tensor, attention_bias: tf.Tensor, length: tf.Tensor, training: bool
    ) -> tf.Tensor:
        hidden = rows.shape[-1]
        head_size = hidden // self._num_heads
        # [b*s, 3h] -> [3, b, heads, s, h/heads]: query, key and value, heads split out
        qkv = tf.reshape(self.query_key_value(rows), [-1, length, 3, self._num_heads, head_size])
        query, key, value = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
        scores = tf.matmul(
            query * tf.cast(1 / math.sqrt(head_size), rows.dtype), key, transpose_b=True
        )
        scores += tf.cast(attention_bias, rows.dtype)
        probs = _dropout(tf.nn.softmax(scores, axis=-1), self._attention_dropout, training)
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
        return tf.reshape(context, [-1, hidden])


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
        self.pooler = _Dense(weights, ["pooler.dense"], "pooler")
        self._hidden_dropout = config["hidden_dropout_prob"]
        self._max_positions = config["max_position_embeddings"]

    def __call__(
        self,
        inputs: dict[str, tf.Tensor],
        training: bool = False,
        compute_dtype: tf.DType = tf.float32,
    ) -> dict[str, Any]:
        word_ids, type_ids = inputs["input_word_ids"], inputs["input_type_ids"]
        batch, length = tf.shape(word_ids)[0], tf.shape(word_ids)[1]
        tf.debugging.assert_less_equal(
            length, self._max_positions, message="sequence longer than max_position_embeddings"
        )
        x = (
            tf.gather(self.word_embeddings, word_ids)
            + self.position_embeddings[:length]
            + tf.gather(self.type_embeddings, type_ids)
        )
        hidden = x.shape[-1]
        x = _dropout(
            self.embedding_norm(tf.reshape(x, [-1, hidden])), self._hidden_dropout, training
        )
        # [b, s] mask -> [b, 1, 1, s] bias broadcast over heads and query positions.
        mask = tf.cast(inputs["input_mask"], x.dtype)[:, tf.newaxis, tf.newaxis, :]
        attention_bias = (1.0 - mask) * _MASKED_SCORE
        encoder_outputs = []
        for layer in self.layers:
            x = layer(x, attention_bias, length, training, compute_dtype)
            encoder_outputs.append(tf.reshape(x, [batch, length, hidden]))
        sequence_output = encoder_outputs[-1]
        pooled_output = tf.tanh(self.pooler(sequence_output[:, 0, :]))
        return {
            "pooled_output": pooled_output,
            "sequence_output": sequence_output,
            "encoder_outputs": encoder_outputs,
            "default": pooled_output,
        }

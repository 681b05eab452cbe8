"""embed: pretrained vectors for the LSTM, and the offline TF Hub modules every model uses.

1. Builds, from the BERT checkpoint in params, three TF Hub-style SavedModels under
   data/hub/: `wordvec` (Wiki-words-250 form: strings → vectors), `bert_preprocess`
   and `bert_encoder` (the TF Hub BERT interfaces, read by train_bert).
2. Loads the word-vector module through tensorflow_hub by its handle (the local one by
   default, or e.g. https://tfhub.dev/google/Wiki-words-250/2 online), looks up every
   word of the cleaned corpus, and writes padded token ids plus the embedding matrix.

No vector is learnt here, so nothing depends on the labels or on the test split.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, write_json
from fakenews.data.params import project_path, resolve_handle, stage_params
from fakenews.data.schema import read_table
from fakenews.errors import PipelineError, cli_errors

PAD, OOV = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1
INPUT_COLUMNS = ["id", "title", "label", "tokens"]
VectorLookup = Callable[[list[str]], np.ndarray]


def corpus_vocabulary(token_lists: Iterable[Sequence[str]], min_count: int = 1) -> list[str]:
    """All corpus words seen at least `min_count` times, most frequent first, ties by word."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    kept = [w for w, n in counts.items() if n >= min_count]
    return [PAD, OOV] + sorted(kept, key=lambda w: (-counts[w], w))


def encode(tokens: Sequence[str], index: dict[str, int], max_length: int, padding: str) -> list[int]:
    """Token ids padded or truncated to max_length; keras pad_sequences semantics."""
    ids = [index.get(t, OOV_ID) for t in tokens]
    if len(ids) > max_length:
        ids = ids[-max_length:] if padding == "pre" else ids[:max_length]
    pad = [PAD_ID] * (max_length - len(ids))
    return pad + ids if padding == "pre" else ids + pad


def embed(frame: pd.DataFrame, vectors_for: VectorLookup, params: dict[str, Any]
          ) -> tuple[pd.DataFrame, list[str], np.ndarray, dict[str, Any]]:
    """The core: (table with `token_ids`, vocabulary, embedding matrix, coverage report).

    Row 0 of the matrix is padding and row 1 unknown words (both zero); row i is the
    pretrained vector of vocabulary word i, zero when the module has none.
    """
    max_length, padding = int(params["max_length"]), params.get("padding", "pre")
    if max_length < 1 or padding not in ("pre", "post"):
        raise PipelineError("params.yaml: embed.max_length must be ≥ 1 and embed.padding pre or post")
    vocab = corpus_vocabulary(frame["tokens"], int(params.get("min_count", 1)))
    words = vocab[2:]
    vectors = vectors_for(words) if words else np.zeros((0, 1), np.float32)
    matrix = np.vstack([np.zeros((2, vectors.shape[1]), np.float32), vectors.astype(np.float32)])
    index = {w: i for i, w in enumerate(vocab)}
    token_ids = [encode(list(t), index, max_length, padding) for t in frame["tokens"]]
    report = coverage_report(frame["tokens"], index, matrix, max_length)
    return frame.assign(token_ids=token_ids), vocab, matrix, report


def coverage_report(token_lists: Iterable[Sequence[str]], index: dict[str, int],
                    matrix: np.ndarray, max_length: int) -> dict[str, Any]:
    has_vector = np.abs(matrix).sum(axis=1) > 0
    total = covered = truncated = 0
    for tokens in token_lists:
        total += len(tokens)
        covered += sum(bool(has_vector[index.get(t, OOV_ID)]) for t in tokens)
        truncated += len(tokens) > max_length
    return {
        "vocab_size": len(index),
        "vocab_with_vector": int(has_vector.sum()),
        "type_coverage": round(float(has_vector[2:].mean()) if len(index) > 2 else 0.0, 4),
        "tokens": total,
        "token_coverage": round(covered / total, 4) if total else 0.0,
        "truncated_headlines": truncated,
        "dim": int(matrix.shape[1]),
    }


def hub_vector_lookup(handle: str, batch_size: int = 4096) -> VectorLookup:
    """Vectors from any TF Hub text-embedding module, one word per input string."""
    import tensorflow as tf
    import tensorflow_hub as hub

    try:
        layer = hub.KerasLayer(resolve_handle(handle), input_shape=[], dtype=tf.string)
    except Exception as err:  # hub raises many types; all mean the handle is unusable
        raise PipelineError(f"cannot load word-vector module {handle!r}: {err}") from None

    def lookup(words: list[str]) -> np.ndarray:
        batches = [layer(tf.constant(words[i:i + batch_size])).numpy()
                   for i in range(0, len(words), batch_size)]
        return np.concatenate(batches).astype(np.float32)

    return lookup


def build_hub_modules(checkpoint: Path, hub_dir: Path, bert_layers: int | None = None) -> None:
    """The three offline modules, from the checkpoint in params."""
    from fakenews.hub.checkpoint import VOCAB_FILE
    from fakenews.hub.encoder import build_encoder_module
    from fakenews.hub.preprocess import build_preprocess_module
    from fakenews.hub.wordvec import build_wordvec_module, checkpoint_word_vectors

    print(f"embed: building TF Hub modules from {checkpoint}", flush=True)
    build_wordvec_module(*checkpoint_word_vectors(checkpoint), hub_dir / "wordvec")
    build_preprocess_module(checkpoint / VOCAB_FILE, hub_dir / "bert_preprocess")
    build_encoder_module(checkpoint, hub_dir / "bert_encoder", bert_layers)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser("embed", "Build the hub modules; embed cleaned headlines.").parse_args(argv)
    params = stage_params("embed", args.params)
    paths = stage_params("paths", args.params)
    build_hub_modules(project_path(params["bert_checkpoint"]), project_path(paths["hub_dir"]),
                      params.get("bert_layers"))
    frame = read_table(project_path(paths["cleaned"]), INPUT_COLUMNS)
    print(f"embed: looking up word vectors with {params['wordvec_handle']}", flush=True)
    table, vocab, matrix, report = embed(frame, hub_vector_lookup(params["wordvec_handle"]), params)
    with atomic_path(project_path(paths["embedded_dir"])) as tmp:
        tmp.mkdir()
        table.to_parquet(tmp / "headlines.parquet", index=False)
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        np.save(tmp / "embeddings.npy", matrix)
    write_json(report, project_path(paths["embed_metrics"]))
    print(f"embed: {report['vocab_size']} words, token coverage {report['token_coverage']:.1%}")


if __name__ == "__main__":
    main()

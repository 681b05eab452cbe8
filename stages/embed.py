"""embed: pretrained vectors for the LSTM, and the offline TF Hub modules every model uses.

1. Builds, from the BERT checkpoint in params, three TF Hub-style SavedModels under
   data/hub/: `wordvec` (Wiki-words-250 form: strings → vectors), `bert_preprocess`
   and `bert_encoder` (the TF Hub BERT interfaces, read by train_bert).
2. Loads the word-vector module through tensorflow_hub by its handle (the local one by
   default, or e.g. https://tfhub.dev/google/Wiki-words-250/2 online) and looks up every
   distinct word of the cleaned corpus: a word → vector table, `words.txt` beside
   `vectors.npy`, and the coverage report.

Nothing is fitted here: a lookup depends on the word alone, not on labels or splits.
The LSTM's vocabulary is chosen by train_lstm, on the training split only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, write_json
from fakenews.data.params import project_path, resolve_handle, stage_params
from fakenews.data.schema import read_table
from fakenews.errors import PipelineError, cli_errors

INPUT_COLUMNS = ["id", "tokens"]
VectorLookup = Callable[[list[str]], np.ndarray]


def embed(frame: pd.DataFrame, vectors_for: VectorLookup) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """The core: (every distinct corpus word, its vector (zero when the module has none),
    coverage report)."""
    words = sorted({token for tokens in frame["tokens"] for token in tokens})
    vectors = vectors_for(words) if words else np.zeros((0, 1), np.float32)
    return words, vectors.astype(np.float32), coverage_report(frame["tokens"], words, vectors)


def coverage_report(token_lists: Iterable[Sequence[str]], words: list[str], vectors: np.ndarray
                    ) -> dict[str, Any]:
    has_vector = dict(zip(words, np.abs(vectors).sum(axis=1) > 0))
    total = covered = 0
    for tokens in token_lists:
        total += len(tokens)
        covered += sum(bool(has_vector.get(t)) for t in tokens)
    with_vector = int(sum(has_vector.values()))
    return {
        "words": len(words),
        "words_with_vector": with_vector,
        "type_coverage": round(with_vector / len(words), 4) if words else 0.0,
        "tokens": total,
        "token_coverage": round(covered / total, 4) if total else 0.0,
        "dim": int(vectors.shape[1]),
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
    words, vectors, report = embed(frame, hub_vector_lookup(params["wordvec_handle"]))
    with atomic_path(project_path(paths["embedded_dir"])) as tmp:
        tmp.mkdir()
        (tmp / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        np.save(tmp / "vectors.npy", vectors)
    write_json(report, project_path(paths["embed_metrics"]))
    print(f"embed: {report['words']} distinct words, token coverage {report['token_coverage']:.1%}")


if __name__ == "__main__":
    main()

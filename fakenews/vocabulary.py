"""The LSTM's word ids: a vocabulary fitted on training tokens, and padding to a length.

Shared by train_lstm, which fits the vocabulary on the training split only, and by the
logged model, which encodes any headline with the vocabulary it was trained with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, OOV = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1


def corpus_vocabulary(token_lists: Iterable[Sequence[str]], min_count: int = 1) -> list[str]:
    """PAD, OOV, then the words seen at least `min_count` times, most frequent first, ties
    by word."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    kept = [w for w, n in counts.items() if n >= min_count]
    return [PAD, OOV] + sorted(kept, key=lambda w: (-counts[w], w))


def encode(
    tokens: Sequence[str], index: dict[str, int], max_length: int, padding: str
) -> list[int]:
    """Token ids padded or truncated to max_length; keras pad_sequences semantics."""
    ids = [index.get(t, OOV_ID) for t in tokens]
    if len(ids) > max_length:
        ids = ids[-max_length:] if padding == "pre" else ids[:max_length]
    pad = [PAD_ID] * (max_length - len(ids))
    return pad + ids if padding == "pre" else ids + pad


def encode_all(
    token_lists: Iterable[Sequence[str]], vocab: list[str], max_length: int, padding: str
) -> np.ndarray:
    """[rows, max_length] int32 ids of many headlines."""
    index = {w: i for i, w in enumerate(vocab)}
    return encode_many(list(token_lists), index, max_length, padding)[0]


def encode_many(
    token_lists: Sequence[Sequence[str]], index: dict[str, int], max_length: int, padding: str
) -> tuple[np.ndarray, np.ndarray]:
    """`encode` of every row at once, with NumPy doing the padding: ([rows, max_length]
    int32 ids, each row's count of ids kept). One dictionary lookup per token is the only
    Python left per token."""
    counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(
        (index.get(t, OOV_ID) for tokens in token_lists for t in tokens),
        dtype=np.int32,
        count=int(counts.sum()),
    )
    kept = np.minimum(counts, max_length)
    row = np.repeat(np.arange(len(token_lists)), kept)
    position = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
    first = np.cumsum(counts) - counts  # where each row's tokens start in `flat`
    ids = np.full((len(token_lists), max_length), PAD_ID, dtype=np.int32)
    if padding == "pre":  # the last max_length tokens, right-aligned
        ids[row, max_length - kept[row] + position] = flat[
            first[row] + counts[row] - kept[row] + position
        ]
    else:  # the first max_length tokens, left-aligned
        ids[row, position] = flat[first[row] + position]
    return ids, kept


def pretrained_matrix(vocab: list[str], words: list[str], vectors: np.ndarray) -> np.ndarray:
    """Row i: the pretrained vector of vocab[i], zero for PAD, OOV and words without one."""
    row_of = {w: i for i, w in enumerate(words)}
    matrix = np.zeros((len(vocab), vectors.shape[1]), np.float32)
    for i, word in enumerate(vocab[2:], start=2):
        if word in row_of:
            matrix[i] = vectors[row_of[word]]
    return matrix

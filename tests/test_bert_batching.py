"""train_bert's input speed-ups: batches of similar length, padded only to their longest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fakenews.models.bert import length_grouped_batches, trim_to_longest


@pytest.fixture(scope="module")
def preprocessor(hub_modules):
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401

    return hub.load(str(hub_modules["preprocess"]))


def titles_of_many_lengths(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    words = ["senate", "budget", "celebrity", "wedding", "secret", "alien", "vote", "star"]
    titles = [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(count)]
    return pd.DataFrame({"title": titles, "label": np.arange(count) % 2})


def word_pieces(preprocessor, titles) -> np.ndarray:
    import tensorflow as tf

    return preprocessor.tokenize(tf.constant(list(titles))).merge_dims(1, -1).row_lengths().numpy()


def test_trim_keeps_exactly_the_columns_some_title_uses(preprocessor):
    import tensorflow as tf

    tokens = preprocessor.tokenize(
        tf.constant(
            [
                "senate passes budget",
                "a much longer headline about the senate passing the annual budget",
            ]
        )
    )
    packed = preprocessor.bert_pack_inputs([tokens], seq_length=tf.constant(32))
    trimmed = trim_to_longest(packed)
    longest = int(packed["input_mask"].numpy().sum(axis=1).max())
    assert longest < 32
    for name, tensor in trimmed.items():
        np.testing.assert_array_equal(tensor.numpy(), packed[name].numpy()[:, :longest])
    assert trimmed["input_mask"].numpy()[:, -1].max() == 1  # the last kept column is used


def test_each_epoch_yields_every_title_once_in_batches_of_similar_length(preprocessor):
    frame = titles_of_many_lengths(200)
    lengths = dict(zip(frame["title"], word_pieces(preprocessor, frame["title"]), strict=False))
    grouped = length_grouped_batches(preprocessor, frame, 16, 4, seed=1, shuffle=True)
    plain = length_grouped_batches(preprocessor, frame, 16, 1, seed=1, shuffle=True)
    assert len(grouped) == 13  # ceil(200 / 16)

    def epoch(batches):
        seen, padded = [], 0
        for i in range(len(batches)):
            titles, labels = batches[i]
            titles = [t.decode() for t in titles.numpy()]
            assert len(titles) == len(labels)
            seen += titles
            padded += len(titles) * max(lengths[t] for t in titles)
        batches.on_epoch_end()
        return seen, padded

    first, grouped_cost = epoch(grouped)
    second, _ = epoch(grouped)
    assert sorted(first) == sorted(frame["title"]) == sorted(second)
    assert first != second  # reshuffled between epochs
    _, plain_cost = epoch(plain)
    assert grouped_cost < 0.8 * plain_cost


def test_batches_repeat_for_a_seed_and_keep_order_without_shuffle(preprocessor):
    frame = titles_of_many_lengths(50)

    def first_batch(**kwargs):
        titles, labels = length_grouped_batches(preprocessor, frame, 8, 2, **kwargs)[0]
        return titles.numpy().tolist(), labels.tolist()

    assert first_batch(seed=3, shuffle=True) == first_batch(seed=3, shuffle=True)
    assert first_batch(seed=3, shuffle=True) != first_batch(seed=4, shuffle=True)
    in_order = length_grouped_batches(preprocessor, frame, 8, 1, seed=0, shuffle=False)
    assert sorted(t.decode() for t in in_order[0][0].numpy()) == sorted(frame["title"][:8])

"""Vocabulary, tag sets, padding and the bucketing helpers, against direct references."""

from __future__ import annotations

import collections

import numpy as np

from mtl_jax.data import bucketing, text


def random_sentences(rng: np.random.Generator, count: int) -> list[list[str]]:
    words = [f"w{i}" for i in range(30)]
    return [list(rng.choice(words, rng.integers(1, 12))) for _ in range(count)]


def test_vocabulary_ids_pad_unknown_then_by_frequency(rng) -> None:
    sentences = random_sentences(rng, 40)
    vocabulary = text.build_vocabulary(sentences, min_count=2)
    counts = collections.Counter(t for s in sentences for t in s)
    assert vocabulary[:2] == ["<pad>", "<unk>"]
    assert set(vocabulary[2:]) == {t for t, c in counts.items() if c >= 2}
    ranks = [(-counts[t], t) for t in vocabulary[2:]]
    assert ranks == sorted(ranks)
    encoder = text.TokenEncoder(vocabulary)
    sentence = sentences[0] + ["never-seen"]
    ids = encoder([t.encode() for t in sentence])  # bytes, as TFDS returns them
    expected = [vocabulary.index(t) if t in vocabulary else 1 for t in sentence]
    assert ids.tolist() == expected and ids[-1] == 1


def test_tag_set_from_train_only_and_unseen_class(rng) -> None:
    names = [f"T{i}" for i in range(9)]
    train = [rng.integers(0, 6, rng.integers(1, 8)) for _ in range(20)]
    tag_set = text.build_tag_set(train, names)
    seen = sorted({names[i] for row in train for i in row})
    assert tag_set == seen + ["<unseen>"]
    id_map = text.tag_id_map(names, tag_set)
    for i, name in enumerate(names):
        assert tag_set[id_map[i]] == (name if name in seen else "<unseen>")


def test_pad_rows_truncates_and_masks(rng) -> None:
    rows = [rng.integers(1, 50, n).astype(np.int32) for n in (3, 7, 1)]
    values, mask = text.pad_rows(rows, 5)
    for i, row in enumerate(rows):
        n = min(len(row), 5)
        np.testing.assert_array_equal(values[i, :n], row[:n])
        assert (values[i, n:] == 0).all() and mask[i].sum() == n and mask[i, :n].all()


def test_buckets_and_pooled_batches(rng) -> None:
    assert bucketing.default_buckets(88) == (16, 32, 64, 128)
    assert bucketing.default_buckets(10) == (16,)
    assert [bucketing.bucket_length(n, (16, 32)) for n in (1, 16, 17, 40)] == [16, 16, 32, 32]
    lengths = rng.integers(1, 100, 70)
    order = rng.permutation(70)
    batches = bucketing.pooled_batches(order, lengths, 8, np.random.default_rng(1), pool_batches=4)
    assert batches.shape == (8, 8)
    assert sorted(batches.ravel().tolist()) == sorted(order[:64].tolist())
    for pool_start in (0, 32):  # each pool of 4 batches is sorted by length
        pool = order[pool_start : pool_start + 32]
        pool_batches = [b for b in batches if set(b) <= set(pool)]
        assert len(pool_batches) == 4
        spans = sorted((lengths[b].min(), lengths[b].max()) for b in pool_batches)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(3))

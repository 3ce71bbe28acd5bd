"""train_batches / eval_batches: determinism, epochs, resume, host slices, padding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtl_jax.errors import DataError
from mtl_jax.data.pipeline import eval_batches, train_batches


def make_source(rng: np.random.Generator, size: int) -> list[dict]:
    """Examples whose ``id`` tells which one was read, plus random features and labels."""
    return [
        {
            "id": np.int32(i),
            "x": rng.standard_normal(3).astype(np.float32),
            "label": np.int32(rng.integers(0, 5)),
            "name": f"example {i}",
        }
        for i in range(size)
    ]


def take(iterator, count: int) -> list[dict]:
    return [next(iterator) for _ in range(count)]


def ids(batches) -> list[list[int]]:
    return [batch["id"].tolist() for batch in batches]


def test_batches_follow_the_epoch_permutations(rng) -> None:
    source = make_source(rng, 23)
    seed = int(rng.integers(1 << 30))
    batches = take(train_batches(source, 5, seed, process_index=0, process_count=1), 9)
    # reference: epoch e is default_rng([seed, e]).permutation(23), 4 batches of 5, rest dropped
    expected = []
    for epoch in range(3):
        order = np.random.default_rng([seed, epoch]).permutation(23)
        expected += [order[b * 5 : (b + 1) * 5].tolist() for b in range(4)]
    assert ids(batches) == expected[:9]
    for batch in batches:
        rows = batch["id"]
        np.testing.assert_array_equal(batch["x"], np.stack([source[i]["x"] for i in rows]))
        np.testing.assert_array_equal(batch["label"], [source[i]["label"] for i in rows])
        assert "name" not in batch  # strings are not stacked by the default collate
    first_epoch = np.concatenate(ids(batches[:4]))
    assert len(set(first_epoch.tolist())) == 20  # no example twice within an epoch


def test_same_seed_same_batches_and_other_seed_differs(rng) -> None:
    source = make_source(rng, 40)
    run = lambda seed: ids(take(train_batches(source, 8, seed, process_index=0, process_count=1), 12))  # noqa: E731
    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("stop", [2, 5, 7])
def test_resume_mid_epoch_gives_the_remaining_batches(rng, stop: int) -> None:
    source = make_source(rng, 30)
    uninterrupted = take(train_batches(source, 6, 11, process_index=0, process_count=1), 12)
    first = train_batches(source, 6, 11, process_index=0, process_count=1)
    take(first, stop)
    state = json.loads(json.dumps(first.get_state()))  # survives a JSON checkpoint
    assert state["step"] == stop and state["epoch"] == stop // 5 and state["batch_in_epoch"] == stop % 5
    resumed = train_batches(source, 6, 11, process_index=0, process_count=1)
    resumed.set_state(state)
    for expected, batch in zip(uninterrupted[stop:], take(resumed, 12 - stop)):
        assert expected.keys() == batch.keys()
        for key in expected:
            np.testing.assert_array_equal(expected[key], batch[key])


def test_process_slices_concatenate_to_the_global_batch(rng) -> None:
    source = make_source(rng, 50)
    single = take(train_batches(source, 12, 5, process_index=0, process_count=1), 6)
    slices = [take(train_batches(source, 12, 5, process_index=p, process_count=3), 6) for p in range(3)]
    for step, batch in enumerate(single):
        for key in batch:
            assert all(s[step][key].shape[0] == 4 for s in slices)
            np.testing.assert_array_equal(np.concatenate([s[step][key] for s in slices]), batch[key])


def test_bucketing_pads_every_process_alike(rng) -> None:
    lengths = rng.integers(1, 70, 64)
    source = [{"id": np.int32(i), "n": np.int32(n)} for i, n in enumerate(lengths)]

    def collate(examples, length):
        return {"id": np.array([e["id"] for e in examples]), "padded": np.full(len(examples), length)}

    kwargs = dict(collate=collate, lengths=lengths, buckets=(16, 32, 64, 128))
    single = take(train_batches(source, 8, 2, process_index=0, process_count=1, **kwargs), 16)
    halves = [take(train_batches(source, 8, 2, process_index=p, process_count=2, **kwargs), 16) for p in range(2)]
    seen = []
    for step, batch in enumerate(single):
        longest = lengths[batch["id"]].max()
        bucket = min(b for b in (16, 32, 64, 128) if b >= longest)
        assert set(batch["padded"].tolist()) == {bucket}
        for half in halves:
            assert set(half[step]["padded"].tolist()) == {bucket}
        np.testing.assert_array_equal(np.concatenate([h[step]["id"] for h in halves]), batch["id"])
        seen += batch["id"].tolist()
    assert sorted(seen[:64]) == list(range(64))  # epoch 0: every example once
    # pooled sorting: less padding than random batches of the same examples
    padding = sum(int(b["padded"][0]) * 8 - lengths[b["id"]].sum() for b in single[:8])
    random_order = np.random.default_rng(0).permutation(64).reshape(8, 8)
    random_padding = sum(min(b for b in (16, 32, 64, 128) if b >= lengths[r].max()) * 8 - lengths[r].sum() for r in random_order)
    assert padding <= random_padding


def test_eval_batches_cover_every_example_once_with_masked_padding(rng) -> None:
    source = make_source(rng, 11)
    batches = list(eval_batches(source, 4, label_keys=("label",)))
    assert [b["id"].shape for b in batches] == [(4,)] * 3
    valid = np.concatenate([b["example_mask"] for b in batches])
    np.testing.assert_array_equal(valid, np.arange(12) < 11)
    np.testing.assert_array_equal(np.concatenate([b["label_mask"] for b in batches]), valid)
    np.testing.assert_array_equal(np.concatenate([b["id"] for b in batches])[:11], np.arange(11))


def test_eval_padding_keeps_existing_masks_and_input_masks(rng) -> None:
    source = [
        {"tokens_mask": np.ones(3, bool), "tag": np.int32(rng.integers(3)), "tag_mask": bool(i % 2)}
        for i in range(5)
    ]
    last = list(eval_batches(source, 4))[-1]
    np.testing.assert_array_equal(last["tag_mask"], [False, False, False, False])
    np.testing.assert_array_equal(last["tokens_mask"], np.ones((4, 3), bool))  # inputs untouched
    first = next(eval_batches(source, 4))
    np.testing.assert_array_equal(first["tag_mask"], [False, True, False, True])


def test_bad_arguments_and_foreign_state_raise_data_error(rng) -> None:
    source = make_source(rng, 10)
    with pytest.raises(DataError, match="empty"):
        train_batches([], 2, 0, process_index=0, process_count=1)
    with pytest.raises(DataError, match="multiple of 4"):
        train_batches(source, 6, 0, process_index=0, process_count=4)
    with pytest.raises(DataError, match="at most 10"):
        train_batches(source, 12, 0, process_index=0, process_count=1)
    iterator = train_batches(source, 2, 0, process_index=0, process_count=1)
    other = train_batches(source, 2, 1, process_index=0, process_count=1).get_state()
    with pytest.raises(DataError, match="seed"):
        iterator.set_state(other)
    with pytest.raises(DataError, match="format"):
        iterator.set_state({"step": 3})

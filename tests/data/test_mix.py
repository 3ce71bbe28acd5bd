"""Mixing datasets: strategy proportions, resume, joint vocabulary, absent tasks in the real step."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from mtl_jax.errors import DataError
from mtl_jax.data.mix import mix, mixing_probabilities, select_tasks
from mtl_jax.data.opened import OpenDataset
from mtl_jax.data.pipeline import stack_examples
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec
from tests.helpers import NUM_CLASSES, small_model, state_and_step


def feature_dataset(rng: np.random.Generator, name: str, task: str, size: int) -> OpenDataset:
    """An in-memory dataset of 12 features and one 5-class task."""
    examples = [
        {"x": rng.standard_normal(12).astype(np.float32), task: np.int32(rng.integers(NUM_CLASSES)), "origin": np.int32(len(name))}
        for _ in range(size)
    ]
    spec = DatasetSpec(name, InputSpec("features", "x", (12,)), (TaskSpec(task, "classification", NUM_CLASSES),))
    return OpenDataset(spec, {"train": examples}, stack_examples)


@pytest.mark.parametrize("strategy,temperature", [("proportional", 1.0), ("temperature", 3.0)])
def test_mixing_proportions_within_tolerance(rng, strategy: str, temperature: float) -> None:
    sizes = (40, 160, 20)
    datasets = [feature_dataset(rng, "d" * (i + 1), f"task{i}", n) for i, n in enumerate(sizes)]
    mixed = mix(datasets, strategy, temperature)
    expected = np.asarray(sizes, float) ** (1 / temperature)
    expected /= expected.sum()
    np.testing.assert_allclose(mixed.probabilities(), expected)
    iterator = mixed.train_batches("train", batch_size=4, seed=9, process_index=0, process_count=1)
    origins = np.array([next(iterator)["origin"][0] for _ in range(1500)])
    counts = np.array([(origins == i + 1).sum() for i in range(3)])
    # binomial standard error at n=1500 is at most 0.013; allow 4 of them
    np.testing.assert_allclose(counts / len(origins), expected, atol=0.052)


def test_round_robin_and_resume(rng) -> None:
    datasets = [feature_dataset(rng, "a", "task0", 30), feature_dataset(rng, "bb", "task1", 50)]
    mixed = mix(datasets, "round_robin")
    iterator = mixed.train_batches("train", batch_size=6, seed=1, process_index=0, process_count=1)
    batches = [next(iterator) for _ in range(14)]
    assert [int(b["origin"][0]) for b in batches] == [1, 2] * 7
    restarted = mixed.train_batches("train", batch_size=6, seed=1, process_index=0, process_count=1)
    for _ in range(5):
        next(restarted)
    state = json.loads(json.dumps(restarted.get_state()))
    resumed = mix(datasets, "round_robin").train_batches("train", batch_size=6, seed=1, process_index=0, process_count=1)
    resumed.set_state(state)
    for expected in batches[5:]:
        batch = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(batch[key], expected[key])
    with pytest.raises(DataError, match="seed"):
        mixed.train_batches("train", batch_size=6, seed=2, process_index=0, process_count=1).set_state(state)


def test_absent_task_has_zero_loss_and_gradient_in_the_step(rng) -> None:
    datasets = [feature_dataset(rng, "a", "task0", 32), feature_dataset(rng, "bb", "task1", 32)]
    mixed = mix(datasets, "round_robin")
    batch = next(mixed.train_batches("train", batch_size=8, seed=0, process_index=0, process_count=1))
    assert int(batch["origin"][0]) == 1 and not batch["task1_mask"].any() and batch["task0_mask"].all()
    batch = {k: v for k, v in batch.items() if k != "origin"}
    model, params = small_model(2)
    before = jax.device_get(params["tasks"]["task1"])
    state, step = state_and_step(model, params, "upgrad")
    state, metrics = step(state, batch)
    metrics = jax.device_get(metrics)
    assert metrics["loss"][1] == 0.0 and metrics["loss"][0] > 0.0
    assert metrics["grad_norm"][1] == 0.0 and metrics["grad_norm"][0] > 0.0
    after = jax.device_get(state.params["tasks"]["task1"])
    for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(old, new)  # plain SGD: zero gradient leaves the head as is


def test_joint_vocabulary_and_selected_tasks(tmp_path) -> None:
    from mtl_jax.data.datasets import open_dataset

    turkish = select_tasks(open_dataset("turkish_ud", tmp_path, limit=60), ["coarse_pos"])
    dante = select_tasks(open_dataset("dante_tweets", tmp_path, limit=120), ["upos", "joy"])
    mixed = mix([turkish, dante], "temperature", 2.0)
    assert [t.name for t in mixed.spec.tasks] == ["coarse_pos", "upos", "joy"]
    vocabulary = mixed.datasets[0].vocabulary
    assert mixed.spec.input.vocab_size == len(vocabulary) == len(set(turkish.vocabulary) | set(dante.vocabulary))
    assert mixed.datasets[1].vocabulary == vocabulary
    iterator = mixed.train_batches("train", batch_size=8, seed=0, process_index=0, process_count=1)
    for _ in range(6):
        batch = next(iterator)
        assert set(batch) == {"tokens", "tokens_mask", "coarse_pos", "coarse_pos_mask", "upos", "upos_mask", "joy", "joy_mask"}
        from_turkish = batch["coarse_pos_mask"].any()
        assert from_turkish != batch["upos_mask"].any() and batch["upos"].shape == batch["tokens"].shape
        if from_turkish:
            assert not batch["joy_mask"].any()
    example = dante.splits["train"][0]
    token = example["tokens"][0].decode()
    assert mixed.datasets[1].collate([example])["tokens"][0, 0] == vocabulary.index(token)


def test_mixing_rejects_bad_input(rng) -> None:
    a = feature_dataset(rng, "a", "task0", 10)
    with pytest.raises(DataError, match="strategy"):
        mix([a], "uniform")
    with pytest.raises(DataError, match="occur in several"):
        mix([a, feature_dataset(rng, "b", "task0", 10)])
    with pytest.raises(DataError, match="temperature"):
        mixing_probabilities([1, 2], "temperature", 0.0)

"""A NaN/Inf task loss never reaches the parameters: the update is skipped and counted, or the
run stops with a message naming the task and the step."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import optax
import pytest

from mtl_jax.data.columns import ColumnSource
from mtl_jax.data.pipeline import epoch_permutation
from mtl_jax.surgery.nonfinite import keep_state_when_nonfinite, skip_nonfinite_updates, skipped_updates
from mtl_jax.training import data_source
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.experiment import Experiment
from mtl_jax.training.hooks import NonFiniteLossError
from mtl_jax.training.loop import train
from tests.helpers import random_batch, small_model, state_and_step
from tests.training.small_run import tiny_config


@pytest.mark.parametrize("aggregator", ["pcgrad", "gradvac"])
def test_nonfinite_batch_leaves_the_state_unchanged_and_is_counted(rng, aggregator):
    model, params = small_model(2)
    state, step = state_and_step(model, params, aggregator, optimizer=skip_nonfinite_updates(optax.adam(1e-2)))
    state, _ = step(state, random_batch(rng, 16, 2))
    before = jax.device_get(state)
    bad = random_batch(rng, 16, 2)
    bad["x"][3, 1] = np.nan
    state, metrics = step(state, bad)
    after = jax.device_get(state)
    assert not np.all(np.isfinite(metrics["loss"]))
    assert int(skipped_updates(after.opt_state)) == 1
    for a, b in zip(jax.tree.leaves(before.params), jax.tree.leaves(after.params)):
        np.testing.assert_array_equal(a, b)
    state, _ = step(state, random_batch(rng, 16, 2))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(jax.device_get(state.params)))


def test_aggregator_state_is_kept_on_nonfinite_inputs(rng):
    from mtl_jax.aggregators import WeightingInputs, get_aggregator

    aggregator = keep_state_when_nonfinite(get_aggregator("gradvac"))
    state = aggregator.init(3)
    a = rng.standard_normal((3, 5))
    inputs = WeightingInputs((a @ a.T).astype(np.float32), rng.uniform(0.1, 1, 3).astype(np.float32), jax.random.key(0), np.int32(1))
    weigh = jax.jit(aggregator.weigh)
    _, updated = weigh(inputs, state)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(updated), jax.tree.leaves(state)))
    poisoned = inputs._replace(losses=np.array([1.0, np.nan, 1.0]))
    _, kept = weigh(poisoned, updated)
    for x, y in zip(jax.tree.leaves(kept), jax.tree.leaves(updated)):
        np.testing.assert_array_equal(x, y)


def test_jacobian_level_state_is_kept_on_a_nonfinite_jacobian(rng):
    from mtl_jax.aggregators import WeightingInputs, get_aggregator
    from mtl_jax.aggregators import initial_state

    aggregator = keep_state_when_nonfinite(get_aggregator("moco"))
    shared = {"w": rng.standard_normal((4, 3)).astype(np.float32)}
    state = initial_state(aggregator, 3, shared)
    jacobian = {"w": rng.standard_normal((3, 4, 3)).astype(np.float32)}
    inputs = WeightingInputs(None, rng.uniform(0.1, 1, 3).astype(np.float32), jax.random.key(0), np.int32(1))
    combine = jax.jit(aggregator.combine)
    _, _, updated = combine(jacobian, inputs, state)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(updated), jax.tree.leaves(state)))
    poisoned = {"w": jacobian["w"].copy()}
    poisoned["w"][1, 2, 0] = np.inf
    _, _, kept = combine(poisoned, inputs, updated)
    for x, y in zip(jax.tree.leaves(kept), jax.tree.leaves(updated)):
        np.testing.assert_array_equal(x, y)


POISONED_STEP = 3  # 0-based index of the batch that holds the NaN image


@pytest.fixture(scope="module")
def poisoned() -> Experiment:
    """The tiny MultiMNIST experiment (8 steps) with one NaN image, in the batch of step
    POISONED_STEP; one compiled step for both tests."""
    config = tiny_config(steps=8)
    data = data_source.open_data(config)
    columns = data.columns("train")
    arrays = {key: value.copy() for key, value in columns.arrays.items()}
    order = epoch_permutation(len(columns), config.seed, 0)
    arrays["image"][order[POISONED_STEP * config.batch_size + 5]] = np.nan
    data._columns["train"] = ColumnSource(arrays)  # what train_batches will read
    return Experiment.from_config(config, data=data)


@pytest.mark.slow
def test_skip_mode_counts_and_finishes_with_finite_params(tmp_path, poisoned):
    results = train(poisoned, workdir=tmp_path / "run", progress=False)
    assert results["skipped_updates"] == 1
    assert all(np.isfinite(v) for named in results["test"].values() for v in named.values())


@pytest.mark.slow
def test_stop_mode_names_the_task_and_the_step(tmp_path, poisoned):
    stopping = dataclasses.replace(poisoned, config=dataclasses.replace(poisoned.config, nonfinite="stop"))
    with pytest.raises(NonFiniteLossError, match=f"task 'left' is nan at step {POISONED_STEP + 1}"):
        train(stopping, workdir=tmp_path / "run", progress=False)
    checkpointer = Checkpointer(tmp_path / "run" / "checkpoints", read_only=True)
    steps = checkpointer.steps()
    arrays, _ = checkpointer.restore_arrays(steps[-1])
    checkpointer.close()
    assert steps == [4] and all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f")

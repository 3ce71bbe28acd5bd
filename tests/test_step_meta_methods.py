"""Auto-Lambda, MOML and FORUM inside the compiled step: each trains in full mode (the only
mode they support; the others are refused) with a meta batch under ``"meta/"`` keys; a batch
without one is its own meta batch; gradient statistics are those of the training batch; the
non-finite guard keeps their state; and 4 simulated devices give the 1-device result
(subprocess, ``tests/multidevice_meta_methods.py``)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
import pytest

from mtl_jax.aggregators import MetaWeighting, get_aggregator
from mtl_jax.data.meta import with_meta
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate
from mtl_jax.surgery.nonfinite import keep_state_when_nonfinite, skip_nonfinite_updates
from tests.helpers import random_batch, run_multidevice_script, small_model

NUM_TASKS = 3
METHODS = ("auto_lambda", "moml", "forum")
OPTIONS = {"auto_lambda": {"meta_learning_rate": 0.05}, "moml": {"meta_learning_rate": 0.05},
           "forum": {"inner_steps": 2, "solver_iterations": 100}}  # fmt: skip


@functools.lru_cache(maxsize=None)
def compiled(name: str, gradient_stats: bool = False):
    """(model, params, aggregator, optimizer, step), compiled once per module run."""
    model, params = small_model(NUM_TASKS, hidden=(8,))
    aggregator = get_aggregator(name, **OPTIONS.get(name, {}))
    optimizer = optax.sgd(0.2)
    step = make_train_step(model, aggregator, optimizer, data_mesh(), gradient_stats=gradient_stats)
    return model, params, aggregator, optimizer, step


def fresh_state(name: str, gradient_stats: bool = False):
    model, params, aggregator, optimizer, _ = compiled(name, gradient_stats)
    return replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, 0), data_mesh())


@pytest.mark.parametrize("name", METHODS)
def test_method_trains_in_the_step_with_its_meta_batch(rng, name):
    _, params, aggregator, _, step = compiled(name)
    assert isinstance(aggregator, MetaWeighting) and aggregator.modes == ("full",)
    batch = random_batch(rng, 16, NUM_TASKS)
    state, first = fresh_state(name), None
    initial = jax.device_get(state.aggregator_state)
    for _ in range(6):
        state, metrics = step(state, with_meta(batch, batch))
        first = metrics["loss"] if first is None else first
        assert metrics["weights"].shape == (NUM_TASKS,) and np.all(np.isfinite(metrics["weights"]))
    final = jax.device_get(state)
    assert int(final.step) == 6
    assert np.asarray(metrics["loss"]).sum() < np.asarray(first).sum()  # the training loss went down
    for part in ("shared", "tasks"):  # the look-ahead methods move every parameter
        moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(params[part]), jax.tree.leaves(final.params[part]))]
        assert max(moved) > 0, part
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(final.aggregator_state)]
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves if leaf.dtype.kind == "f")
    assert any(not np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(initial)))  # the weights learned


def test_a_batch_without_meta_is_its_own_meta_batch(rng):
    _, _, _, _, step = compiled("auto_lambda")
    batch = random_batch(rng, 16, NUM_TASKS)
    alone, _ = step(fresh_state("auto_lambda"), batch)
    paired, _ = step(fresh_state("auto_lambda"), with_meta(batch, batch))
    for a, b in zip(jax.tree.leaves(jax.device_get((alone.params, alone.aggregator_state))),
                    jax.tree.leaves(jax.device_get((paired.params, paired.aggregator_state)))):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_the_meta_batch_changes_the_update(rng):
    _, _, _, _, step = compiled("auto_lambda")
    batch, other = random_batch(rng, 16, NUM_TASKS), random_batch(rng, 16, NUM_TASKS)
    own, _ = step(fresh_state("auto_lambda"), with_meta(batch, batch))
    apart, _ = step(fresh_state("auto_lambda"), with_meta(batch, other))
    assert not np.array_equal(jax.device_get(own.aggregator_state.weights), jax.device_get(apart.aggregator_state.weights))


def test_gradient_statistics_are_those_of_the_training_batch(rng):
    batch = with_meta(random_batch(rng, 16, NUM_TASKS), random_batch(rng, 16, NUM_TASKS))
    _, _, _, _, step = compiled("auto_lambda", True)
    _, metrics = step(fresh_state("auto_lambda", True), batch)
    model, params, _, _, _ = compiled("auto_lambda")
    ew = get_aggregator("sum")
    plain = make_train_step(model, ew, optax.sgd(0.2), data_mesh(), gradient_stats=True)
    state = replicate(create_train_state(params, optax.sgd(0.2), ew, NUM_TASKS, 0), data_mesh())
    _, reference = plain(state, {k: v for k, v in batch.items() if not k.startswith("meta/")})
    for key in ("grad_norm", "grad_cosine"):
        np.testing.assert_allclose(metrics[key], reference[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["representation", "instance"])
def test_other_modes_are_refused(mode):
    model = compiled("auto_lambda")[0]
    with pytest.raises(ValueError, match=rf"auto_lambda.*{mode}"):
        make_train_step(model, get_aggregator("auto_lambda"), optax.sgd(0.1), data_mesh(), mode=mode)


def test_a_nonfinite_step_keeps_the_meta_state(rng):
    model, params = small_model(NUM_TASKS, hidden=(8,))
    aggregator = keep_state_when_nonfinite(get_aggregator("auto_lambda", meta_learning_rate=0.05))
    optimizer = skip_nonfinite_updates(optax.sgd(0.2))
    state = replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, 0), data_mesh())
    step = make_train_step(model, aggregator, optimizer, data_mesh(), gradient_stats=False)
    batch = random_batch(rng, 16, NUM_TASKS)
    batch["x"][3, 2] = np.nan
    new, metrics = step(state, with_meta(batch, random_batch(rng, 16, NUM_TASKS)))
    assert not np.all(np.isfinite(metrics["loss"]))
    np.testing.assert_array_equal(jax.device_get(new.aggregator_state.weights), np.full(NUM_TASKS, 0.1, np.float32))


@pytest.mark.slow
def test_four_simulated_devices_equal_one(tmp_path):
    results = run_multidevice_script("tests.multidevice_meta_methods", tmp_path / "result.npz")
    assert sorted({key.split("/")[0] for key in results}) == ["auto_lambda", "forum", "moml"]
    for name in ("auto_lambda", "moml", "forum"):
        assert np.abs(np.diff(results[f"{name}/weights@1"], axis=0)).max() > 0  # the weights were learned
    for key in results:
        if key.endswith("@4"):
            np.testing.assert_allclose(results[key], results[key[:-2] + "@1"], rtol=1e-4, atol=1e-6, err_msg=key)

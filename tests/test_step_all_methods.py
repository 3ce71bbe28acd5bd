"""Every registered aggregator runs inside the compiled step, in every mode it supports, with
its state; unsupported modes are refused; the loss-level fast path equals the Jacobian path.

The tests share compiled steps (the compiles are nearly all of this file's time): one
aggregator object per method, so the fast-path test reuses the step the training test
compiled, and aliases that are the same program (Random = RLW; MGDA-UB = MGDA, in
representation mode) share one compile. Every case still builds its own step, so its mode
is still checked, and trains a fresh state of its own aggregator on fresh batches."""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
import pytest

from mtl_jax.aggregators import REGISTRY, LossWeighting, get_aggregator
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate
from tests.helpers import random_batch, small_model

NUM_TASKS = 5  # Krum with f=1 needs T >= 5
OPTIONS = {"constant": {"weights": [0.5, 1.0, 1.5, 2.0, 0.25]}, "stch": {"warmup_steps": 1}}
NO_WEIGHTS = {"graddrop", "trimmed_mean"}  # element-wise: no weights, reported as NaN
CASES = [
    (name, mode)
    for name in sorted(REGISTRY)
    for mode in ("full", "representation")
    if mode in get_aggregator(name, **OPTIONS.get(name, {})).modes
]
UNSUPPORTED = [
    (name, mode)
    for name in sorted(REGISTRY)
    for mode in ("full", "representation")
    if mode not in get_aggregator(name, **OPTIONS.get(name, {})).modes
]


OPTIMIZER = optax.sgd(0.5)
COMPILED: dict[tuple, object] = {}  # program -> the first step built for it


@functools.lru_cache(maxsize=None)
def model_and_params():
    return small_model(NUM_TASKS)


@functools.lru_cache(maxsize=None)
def aggregator_for(name: str):
    """One aggregator object per method: options bind closures, and a step is reused only
    for the very same functions."""
    return get_aggregator(name, **OPTIONS.get(name, {}))


def program(aggregator, mode: str, gradient_stats: bool) -> tuple:
    """What the compiled step depends on: the aggregator's functions and fields but not its
    registry name or list of modes (read only when the step is built), the mode, the
    statistics switch."""
    fields = aggregator._replace(name="", **({"modes": ()} if "modes" in aggregator._fields else {}))
    return (type(aggregator), *fields, mode, gradient_stats)


def train(batches, name: str, mode: str, gradient_stats: bool):
    """Train a fresh state of ``name`` on ``batches``: (final state on the host, metrics)."""
    (model, params), aggregator = model_and_params(), aggregator_for(name)
    step = make_train_step(model, aggregator, OPTIMIZER, data_mesh(), mode=mode, gradient_stats=gradient_stats)
    step = COMPILED.setdefault(program(aggregator, mode, gradient_stats), step)
    state = replicate(create_train_state(params, OPTIMIZER, aggregator, NUM_TASKS, 0), data_mesh())
    metrics = []
    for batch in batches:
        state, step_metrics = step(state, batch)
        metrics.append(jax.device_get(step_metrics))
    return jax.device_get(state), metrics


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_method_trains_in_the_step(rng, name, mode):
    params = model_and_params()[1]
    batches = [random_batch(rng, 16, NUM_TASKS) for _ in range(3)]
    state, metrics = train(batches, name, mode, gradient_stats=False)
    assert int(state.step) == 3
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.aggregator_state)
               if np.issubdtype(np.asarray(leaf).dtype, np.floating))
    for m in metrics:
        assert m["weights"].shape == (NUM_TASKS,)
        assert np.all(np.isnan(m["weights"])) if name in NO_WEIGHTS else np.all(np.isfinite(m["weights"]))
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
             zip(jax.tree.leaves(params["shared"]), jax.tree.leaves(state.params["shared"]))]
    assert max(moved) > 0, f"{name} never updated the shared parameters"


@pytest.mark.parametrize("name,mode", UNSUPPORTED, ids=[f"{n}-{m}" for n, m in UNSUPPORTED])
def test_unsupported_mode_is_refused_with_the_supported_one(name, mode):
    model, _ = model_and_params()
    aggregator = aggregator_for(name)
    with pytest.raises(ValueError, match=rf"{name}.*{mode}.*supported: {aggregator.modes[0]}"):
        make_train_step(model, aggregator, optax.sgd(0.1), data_mesh(), mode=mode)


LOSS_LEVEL = [n for n in sorted(REGISTRY) if isinstance(get_aggregator(n, **OPTIONS.get(n, {})), LossWeighting)]


def test_loss_level_methods_are_the_expected_ones():
    assert {"uw", "dwa", "famo", "gls", "geometric_mean", "stch", "imtl_l", "rlw", "random", "constant"} <= set(LOSS_LEVEL)


@pytest.mark.parametrize("name", ["uw", "famo", "stch"])
@pytest.mark.parametrize("mode", ["full", "representation"])
def test_loss_level_fast_path_equals_the_jacobian_path(rng, name, mode):
    """One weighted-loss backward pass gives the parameters and state of J, G and Jᵀw."""
    batches = [random_batch(rng, 16, NUM_TASKS) for _ in range(3)]
    fast, fast_metrics = train(batches, name, mode, gradient_stats=False)
    slow, slow_metrics = train(batches, name, mode, gradient_stats=True)
    for a, b in zip(jax.tree.leaves(fast.params), jax.tree.leaves(slow.params)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(fast.aggregator_state), jax.tree.leaves(slow.aggregator_state)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(fast_metrics[-1]["weights"], slow_metrics[-1]["weights"], rtol=2e-4)

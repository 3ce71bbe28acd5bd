"""The compiled train step against gradients computed independently with jax.jacrev.

Tests of the same program share one compiled step (``compiled``), each training a fresh state
on its own random batch: the compiles are nearly all of this file's time."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtl_jax.aggregators import get_aggregator
from mtl_jax.parallel import BatchShapeError
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate
from tests.aggregators.test_pcgrad import reference_pcgrad
from tests.helpers import random_batch, run_steps, small_model, state_and_step

SGD = optax.sgd(1.0)  # with learning rate 1, the step applies exactly the gradient it computed


@functools.lru_cache(maxsize=None)
def compiled(num_tasks: int, aggregator: str, mode: str, **step_kwargs):
    """(model, params, aggregator, the step over all local devices) with SGD at learning rate 1,
    built once per configuration; the step compiles on its first call, once per batch shape."""
    model, params = small_model(num_tasks)
    aggregator_fn = get_aggregator(aggregator)
    step = make_train_step(model, aggregator_fn, SGD, data_mesh(), mode=mode, **step_kwargs)
    return model, params, aggregator_fn, step


def train(num_tasks: int, batches, aggregator: str, mode: str, **step_kwargs):
    """A fresh state trained by the shared compiled step: (model, params, state, metrics)."""
    model, params, aggregator_fn, step = compiled(num_tasks, aggregator, mode, **step_kwargs)
    state = replicate(create_train_state(params, SGD, aggregator_fn, num_tasks, 0), data_mesh())
    metrics = []
    for batch in batches:
        state, step_metrics = step(state, batch)
        metrics.append(jax.device_get(step_metrics))
    return model, params, state, metrics


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def task_losses(model, params, batch):
    """(T,) global mean losses of a plain, single-device forward pass."""
    outputs = model.apply(params, batch)
    stats = [task.loss(outputs[task.name], batch) for task in model.tasks]
    return jnp.stack([s.total / s.count for s in stats])


def shared_jacobian(model, params, batch) -> np.ndarray:
    """(T, P) float64 Jacobian of the task losses w.r.t. the shared parameters."""
    jac = jax.jacrev(lambda shared: task_losses(model, {**params, "shared": shared}, batch))(params["shared"])
    return np.stack([flat(jax.tree.map(lambda x: x[t], jac)) for t in range(len(model.tasks))])


def sgd_step_gradient(before, after):
    """With SGD and learning rate 1, the gradient the step applied is before − after."""
    return jax.tree.map(lambda b, a: np.asarray(b, np.float64) - np.asarray(a, np.float64), before, after)


REFERENCES = {
    "sum": lambda jac: jac.sum(0),
    "mean": lambda jac: jac.mean(0),
    "pcgrad": lambda jac: reference_pcgrad(jac, np.array([[0, 1], [0, 1]])),
}


@pytest.mark.parametrize("aggregator", ["sum", "mean", "pcgrad"])
@pytest.mark.parametrize("gradient_stats", [True, False])
def test_full_mode_shared_update_is_the_aggregated_jacobian(rng, aggregator, gradient_stats):
    batch = random_batch(rng, 32, 2)
    model, params, state, _ = train(2, [batch], aggregator, "full", gradient_stats=gradient_stats)
    jac = shared_jacobian(model, params, batch)
    applied = flat(sgd_step_gradient(params["shared"], state.params["shared"]))
    np.testing.assert_allclose(applied, REFERENCES[aggregator](jac), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["full", "representation"])
@pytest.mark.parametrize("aggregator", ["sum", "mean", "pcgrad"])
def test_each_head_receives_its_own_plain_gradient(rng, mode, aggregator):
    batch = random_batch(rng, 32, 2)  # the shapes of the other tests: their compiled steps
    model, params, state, _ = train(2, [batch], aggregator, mode, gradient_stats=True)
    applied = sgd_step_gradient(params["tasks"], state.params["tasks"])
    for t, task in enumerate(model.tasks):
        own = jax.grad(lambda heads: task_losses(model, {**params, "tasks": heads}, batch)[t])(params["tasks"])
        np.testing.assert_allclose(flat(applied[task.name]), flat(own[task.name]), rtol=1e-4, atol=1e-7)


def test_representation_mode_is_surgery_on_the_feature_gradients(rng):
    model, params, *_ = compiled(2, "pcgrad", "representation", gradient_stats=True)
    batch = random_batch(rng, 32, 2)
    z, encode_vjp = jax.vjp(lambda shared: model.encode(shared, batch, None), params["shared"])
    dz = jax.jacrev(lambda feats: jnp.stack(
        [model.tasks[t].loss(model.decode(params["tasks"], feats, batch, None)[f"task{t}"], batch).total / 32
         for t in range(2)]))(z)
    rows = np.asarray(dz, np.float64).reshape(2, -1)
    combined = reference_pcgrad(rows, np.array([[0, 1], [0, 1]])).reshape(z.shape)
    (expected,) = encode_vjp(jnp.asarray(combined, jnp.float32))
    _, _, state, metrics = train(2, [batch], "pcgrad", "representation", gradient_stats=True)
    applied = sgd_step_gradient(params["shared"], state.params["shared"])
    np.testing.assert_allclose(flat(applied), flat(expected), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(metrics[0]["grad_norm"], np.linalg.norm(rows, axis=1), rtol=1e-5)


def test_metrics_are_losses_norms_and_cosines_of_the_task_gradients(rng):
    batch = random_batch(rng, 32, 4)
    model, params, _, metrics = train(4, [batch], "pcgrad", "full", gradient_stats=True)
    jac = shared_jacobian(model, params, batch)
    norms = np.linalg.norm(jac, axis=1)
    cosines = jac @ jac.T / np.outer(norms, norms)
    np.testing.assert_allclose(metrics[0]["loss"], np.asarray(task_losses(model, params, batch)), rtol=1e-6)
    np.testing.assert_allclose(metrics[0]["grad_norm"], norms, rtol=1e-5)
    np.testing.assert_allclose(metrics[0]["grad_cosine"], cosines, atol=1e-5)
    upper = np.triu_indices(4, k=1)
    assert metrics[0]["conflict_fraction"] == pytest.approx(np.mean(cosines[upper] < 0))


def test_chunked_jacobian_gives_the_vectorised_result(rng):
    batches = [random_batch(rng, 32, 4) for _ in range(3)]
    *_, vectorised, _ = train(4, batches, "pcgrad", "full", gradient_stats=True)
    *_, chunked, _ = train(4, batches, "pcgrad", "full", gradient_stats=True, jacobian_chunk=2)
    np.testing.assert_allclose(flat(chunked.params), flat(vectorised.params), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["full", "representation"])
def test_step_compiles_once_over_ten_steps(rng, mode):
    model, params = small_model(num_tasks=3)
    batches = [random_batch(rng, 16, 3) for _ in range(11)]
    compiles = []

    def count(name, *_args, **_kwargs):
        if name.endswith("backend_compile_duration") or name.endswith("jaxpr_trace_duration"):
            compiles.append(name)

    state, step = state_and_step(model, params, "pcgrad", mode, optax.adam(1e-3))
    state, _ = step(state, batches[0])
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for batch in batches[1:]:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles == []
    assert step.jitted._cache_size() == 1
    assert int(state.step) == 11


def test_donated_state_is_consumed(rng):
    _, params, aggregator_fn, step = compiled(2, "sum", "full", gradient_stats=True)
    state = replicate(create_train_state(params, SGD, aggregator_fn, 2, 0), data_mesh())
    new_state, _ = step(state, random_batch(rng, 32, 2))
    assert jax.tree.leaves(state.params)[0].is_deleted()
    assert not jax.tree.leaves(new_state.params)[0].is_deleted()
    assert not jax.tree.leaves(params)[0].is_deleted()  # replicate() copied the originals


def test_batch_arrays_with_different_lengths_are_rejected(rng):
    model, params = small_model(num_tasks=2)
    batch = random_batch(rng, 8, 2)
    batch["task1"] = batch["task1"][:6]
    with pytest.raises(BatchShapeError, match="disagree on the batch dimension"):
        run_steps(model, params, [batch], "sum", "full")


def test_unknown_mode_names_the_accepted_values():
    model, params = small_model(num_tasks=2)
    with pytest.raises(ValueError, match="accepted values: full, representation"):
        run_steps(model, params, [], "sum", "layerwise")

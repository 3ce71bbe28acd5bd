"""Auto-Lambda (Liu et al. 2022): the hypergradient of the primary meta loss through the
look-ahead step θ' = θ − α ∇Σλ_t L_t (eq. 3–5) against float64 central differences of a NumPy
look-ahead on a linear model; λ's Adam trajectory and the final gradient Σ_t λ_t ∇L_t."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.auto_lambda import auto_lambda, auto_lambda_hypergradient, primary_mask
from tests.aggregators.meta_harness import (
    adam_first_steps,
    central_difference,
    loss_fn,
    np_jacobian,
    np_losses,
    random_problem,
    run_update,
    to_batch,
    to_params,
    unpack,
)


def meta_objective(theta, train, meta, shapes, alpha, mask):
    """λ ↦ Σ_{t∈P} L_t(θ − α J_train(θ)ᵀ λ; B_meta), in NumPy."""
    jac = np_jacobian(theta, train, shapes)
    return lambda lam: mask @ np_losses(theta - alpha * jac.T @ lam, meta, shapes)


@pytest.mark.parametrize("num_tasks,primary", [(1, None), (3, None), (3, [0, 2])])
def test_hypergradient_equals_finite_differences_of_the_look_ahead(rng, num_tasks, primary):
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    lam, alpha = rng.uniform(0.05, 0.5, num_tasks), 0.3
    mask = np.asarray(primary_mask(primary, num_tasks), np.float64)
    expected = central_difference(meta_objective(theta, train, meta, shapes, alpha, mask), lam)
    with jax.enable_x64(True):
        losses, hypergradient = jax.jit(
            lambda p, b, m, w, k: auto_lambda_hypergradient(loss_fn, p, b, m, w, k, alpha)[:2]
        )(to_params(theta, shapes), to_batch(train), to_batch(meta), jnp.asarray(lam), jnp.asarray(mask))
    np.testing.assert_allclose(losses, np_losses(theta, train, shapes), rtol=1e-12)
    np.testing.assert_allclose(hypergradient, expected, rtol=1e-6, atol=1e-9)
    if primary is not None:  # a non-primary task's meta loss does not pull on λ
        other = central_difference(meta_objective(theta, train, meta, shapes, alpha, 1.0 - mask), lam)
        assert np.abs(other).max() > 1e-6


def test_three_steps_follow_adam_on_the_hypergradient(rng):
    num_tasks, meta_lr, alpha, model_lr = 3, 0.05, 0.2, 0.1
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    aggregator = auto_lambda(initial_weight=0.1, meta_learning_rate=meta_lr, inner_learning_rate=alpha)
    state, lam, hypergradients = None, np.full(num_tasks, 0.1), []
    for step in range(3):
        grads, losses, weights, state = run_update(aggregator, theta, train, meta, shapes, state, step)
        hypergradients.append(central_difference(meta_objective(theta, train, meta, shapes, alpha, np.ones(num_tasks)), lam))
        lam = adam_first_steps(hypergradients, np.full(num_tasks, 0.1), meta_lr)[-1]
        np.testing.assert_allclose(weights, lam, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(state.weights), lam, rtol=1e-5)
        np.testing.assert_allclose(grads, np_jacobian(theta, train, shapes).T @ weights, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(losses, np_losses(theta, train, shapes), rtol=1e-12)
        theta = theta - model_lr * grads  # the network's step, as the train step takes it
    assert not np.allclose(lam, 0.1)


def test_a_perfectly_fit_meta_batch_gives_a_zero_hypergradient(rng):
    """U(θ') = 0 with ∇U(θ') = 0: the hypergradient vanishes (to rounding) and λ barely moves."""
    num_tasks, alpha = 2, 0.2
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    ahead = theta - alpha * np_jacobian(theta, train, shapes).T @ np.full(num_tasks, 0.1)
    w, v = unpack(ahead, shapes)
    meta = (meta[0], meta[0] @ w @ v.T)  # targets the look-ahead model predicts exactly
    with jax.enable_x64(True):
        _, hypergradient, _ = auto_lambda_hypergradient(
            loss_fn, to_params(theta, shapes), to_batch(train), to_batch(meta),
            jnp.full((num_tasks,), 0.1), jnp.ones(num_tasks), alpha,
        )  # fmt: skip
    np.testing.assert_allclose(hypergradient, 0.0, atol=1e-12)
    grads, _, weights, _ = run_update(auto_lambda(inner_learning_rate=alpha), theta, train, meta, shapes)
    assert np.all(np.abs(weights - 0.1) <= 1e-4 + 1e-9)  # an Adam step moves at most its lr (1e-4)
    np.testing.assert_allclose(grads, np_jacobian(theta, train, shapes).T @ weights, rtol=1e-6, atol=1e-12)


def test_options_are_checked():
    with pytest.raises(ValueError, match="meta_learning_rate"):
        auto_lambda(meta_learning_rate=0.0)
    with pytest.raises(ValueError, match="primary"):
        auto_lambda(primary="task0")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        auto_lambda(primary=[2]).init(2)
    with pytest.raises(ValueError, match="distinct"):
        auto_lambda(primary=[1, 1]).init(3)
    assert auto_lambda().modes == ("full",)

"""MOML (Ye et al. 2021): the T upper-level hypergradients ∇_α L_t(θ'(α); B_meta) through the
look-ahead θ' = θ − η ∇Σ softmax(α)_s L_s (eq. 6–7) against float64 central differences of a
NumPy look-ahead on a linear model; MGDA on the l2-normalised hypergradients against an
enumerating QP; α's Adam step and the network's gradient Σ softmax(α)_t ∇L_t."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.moml import moml, moml_hypergradients, upper_direction
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
)
from tests.aggregators.references import simplex_qp


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def upper_losses(theta, train, meta, shapes, eta):
    """α ↦ (L_t(θ − η J_train(θ)ᵀ softmax(α); B_meta))_t, in NumPy."""
    jac = np_jacobian(theta, train, shapes)
    return lambda alpha: np_losses(theta - eta * jac.T @ softmax(alpha), meta, shapes)


@pytest.mark.parametrize("num_tasks", [1, 2, 4])
def test_hypergradients_equal_finite_differences_of_the_look_ahead(rng, num_tasks):
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    alpha, eta = rng.standard_normal(num_tasks), 0.25
    expected = central_difference(upper_losses(theta, train, meta, shapes, eta), alpha)  # (T, T): row t = h_t
    with jax.enable_x64(True):
        losses, rows = jax.jit(lambda p, b, m, a: moml_hypergradients(loss_fn, p, b, m, a, eta)[:2])(
            to_params(theta, shapes), to_batch(train), to_batch(meta), jnp.asarray(alpha)
        )
    np.testing.assert_allclose(losses, np_losses(theta, train, shapes), rtol=1e-12)
    np.testing.assert_allclose(rows, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(rows) @ np.ones(num_tasks), 0.0, atol=1e-12)  # softmax is shift-invariant


@pytest.mark.parametrize("num_tasks,dim", [(2, 3), (4, 6)])
def test_mgda_upper_direction_is_the_min_norm_point_of_the_normalised_hypergradients(rng, num_tasks, dim):
    rows = rng.standard_normal((num_tasks, dim)) * rng.uniform(0.1, 10.0, (num_tasks, 1))
    normalised = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    gamma = simplex_qp(normalised @ normalised.T)
    with jax.enable_x64(True):
        direction = jax.jit(upper_direction, static_argnums=1)
        mgda = np.asarray(direction(jnp.asarray(rows), "mgda"))
        total = np.asarray(direction(jnp.asarray(rows), "sum"))
    np.testing.assert_allclose(mgda, gamma @ rows, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(total, rows.sum(axis=0), rtol=1e-12)


def test_two_steps_follow_adam_and_weigh_the_gradient_by_the_new_softmax(rng):
    num_tasks, eta, meta_lr, model_lr = 3, 0.2, 0.05, 0.1
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    aggregator = moml(inner_learning_rate=eta, meta_learning_rate=meta_lr, upper="sum")
    start = np.full(num_tasks, 1.0 / num_tasks)
    state, alpha, directions = None, start, []
    for step in range(2):
        grads, _, weights, state = run_update(aggregator, theta, train, meta, shapes, state, step)
        directions.append(central_difference(upper_losses(theta, train, meta, shapes, eta), alpha).sum(axis=0))
        alpha = adam_first_steps(directions, start, meta_lr)[-1]
        np.testing.assert_allclose(np.asarray(state.logits), alpha, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(weights, softmax(alpha), rtol=1e-5)
        np.testing.assert_allclose(grads, np_jacobian(theta, train, shapes).T @ weights, rtol=1e-6, atol=1e-10)
        theta = theta - model_lr * grads
    assert not np.allclose(softmax(alpha), 1.0 / num_tasks)


def test_one_task_keeps_weight_one(rng):
    """T = 1: softmax is constant, every hypergradient is zero and λ = (1,)."""
    theta, train, meta, shapes = random_problem(rng, 1)
    grads, _, weights, state = run_update(moml(), theta, train, meta, shapes)
    np.testing.assert_allclose(weights, [1.0])
    np.testing.assert_allclose(np.asarray(state.logits), [1.0])
    np.testing.assert_allclose(grads, np_jacobian(theta, train, shapes)[0], rtol=1e-6, atol=1e-12)


def test_options_are_checked():
    with pytest.raises(ValueError, match="upper"):
        moml(upper="pcgrad")
    with pytest.raises(ValueError, match="inner_learning_rate"):
        moml(inner_learning_rate=-1.0)
    assert moml().modes == ("full",)

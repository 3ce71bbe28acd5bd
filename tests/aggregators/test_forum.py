"""FORUM (Ye et al. 2024): ∇q from K lower-level steps (eq. 8), π and c (eq. 9), the
subproblem (10) against SciPy's SLSQP on the authors' (T+1)-variable form, the averaged λ
(eq. 11) and the direction d = Σλ_t F_t + ν∇q (eq. 12) against a float64 NumPy pipeline on a
linear model; the degenerate case of a solved lower level (∇q = 0: MGDA on the normalised
upper-level gradients)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.forum import EPS, Subproblem, forum, momentum_rate, reduced_objective, solve_subproblem
from tests.aggregators.meta_harness import np_jacobian, np_losses, random_problem, run_update, unpack
from tests.aggregators.references import simplex_qp

RHO, ETA, STEPS, META_LR = 2.0, 0.1, 3, 0.01  # a large ρ: ν > 0, so α moves too
FORUM = forum(rho=RHO, inner_learning_rate=ETA, inner_steps=STEPS, meta_learning_rate=META_LR)  # compiled once


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def full_qp(gram: np.ndarray, pi: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """The authors' problem, min wᵀGw − c w_T s.t. Σ w[:T] = 1, w_T ≥ πᵀw[:T], w ≥ 0, by
    enumerating the active inequalities and solving each KKT system (G positive definite)."""
    num_tasks = pi.size
    size = num_tasks + 1
    inequalities = np.vstack([np.eye(size), np.concatenate([-pi, [1.0]])])  # rows: C w ≥ 0
    equality = np.concatenate([np.ones(num_tasks), [0.0]])
    linear = -c * np.eye(size)[-1]
    best, best_value, scale = None, np.inf, np.abs(gram).max() + abs(c)
    for k in range(len(inequalities) + 1):
        for active in itertools.combinations(range(len(inequalities)), k):
            rows = np.vstack([equality, inequalities[list(active)]])
            kkt = np.block([[2 * gram, -rows.T], [rows, np.zeros((len(rows), len(rows)))]])
            rhs = np.concatenate([-linear, [1.0], np.zeros(k)])
            solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            w, multipliers = solution[:size], solution[size + 1:]
            if np.abs(kkt @ solution - rhs).max() > 1e-9 * scale:
                continue
            if np.all(inequalities @ w >= -1e-10) and np.all(multipliers >= -1e-10 * scale):
                value = w @ gram @ w - c * w[-1]
                if value < best_value:
                    best, best_value = w, value
    assert best is not None
    return best, best_value


def np_forum(theta, train, meta, shapes, logits):
    """Every quantity of one FORUM step, in NumPy (the authors' ``train_FORUM``)."""
    p = softmax(logits)
    lower = np_jacobian(theta, train, shapes).T @ p
    omega = theta.copy()
    for _ in range(STEPS):
        omega = omega - ETA * np_jacobian(omega, train, shapes).T @ p
    jac_softmax = np.diag(p) - np.outer(p, p)
    q_alpha = jac_softmax @ (np_losses(theta, train, shapes) - np_losses(omega, train, shapes))
    upper = np_jacobian(theta, meta, shapes)
    normalised = upper / (np.linalg.norm(upper, axis=1, keepdims=True) + EPS)
    grad_q = np.concatenate([q_alpha, lower])
    f_rows = np.concatenate([np.zeros((len(p), len(p))), normalised], axis=1)
    q_norm2 = grad_q @ grad_q + EPS
    pi = RHO - f_rows @ grad_q / q_norm2
    a = np.vstack([f_rows, grad_q])
    return dict(normalised=normalised, lower=lower, q_alpha=q_alpha, pi=pi, c=RHO * q_norm2, gram=a @ a.T,
                problem=Subproblem(normalised @ normalised.T, normalised @ lower, q_norm2, RHO))


def direction(ref, lambdas):
    nu = max(ref["pi"] @ lambdas, 0.0)
    return lambdas @ ref["normalised"] + nu * ref["lower"], nu


@pytest.mark.parametrize("num_tasks", [3])
def test_one_step_against_numpy_and_the_exact_subproblem(rng, num_tasks):
    theta, train, meta, shapes = random_problem(rng, num_tasks)
    grads, losses, lambdas, state = run_update(FORUM, theta, train, meta, shapes)
    ref = np_forum(theta, train, meta, shapes, np.full(num_tasks, 1.0 / num_tasks))
    np.testing.assert_allclose(losses, np_losses(theta, train, shapes), rtol=1e-12)
    w, best = full_qp(ref["gram"], ref["pi"], ref["c"])
    nu = max(ref["pi"] @ lambdas, 0.0)
    ours = np.concatenate([lambdas, [nu]])
    value = ours @ ref["gram"] @ ours - ref["c"] * nu
    scale = np.trace(ref["gram"])
    assert value <= best + 1e-7 * scale, (value, best)  # β_0 = 1: λ is the subproblem's solution
    assert abs(nu - w[-1]) <= 1e-3 * max(1.0, abs(w[-1]))  # ν̃ = max(0, πᵀλ̃)
    expected, nu = direction(ref, lambdas)
    assert nu > 0
    np.testing.assert_allclose(grads, expected, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(direction(ref, w[:-1])[0], grads, rtol=1e-3, atol=1e-3 * np.abs(grads).max())
    g = nu * ref["q_alpha"]  # Adam's first step: −lr·g/(|g| + ε)
    np.testing.assert_allclose(np.asarray(state.logits), 1.0 / num_tasks - META_LR * g / (np.abs(g) + 1e-8), rtol=1e-5)


def test_the_solver_matches_the_exact_subproblem_on_random_inputs(rng):
    solve = jax.jit(solve_subproblem, static_argnums=1)
    for _ in range(6):
        rows = rng.standard_normal((3, 7))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        grad_q = rng.standard_normal(7) * rng.uniform(0.05, 3.0)
        q_norm2 = grad_q @ grad_q + EPS
        problem = Subproblem(rows @ rows.T, rows @ grad_q, q_norm2, RHO)
        with jax.enable_x64(True):
            lam = np.asarray(solve(jax.tree.map(jnp.asarray, problem), 300))
            value = float(reduced_objective(problem, jnp.asarray(lam)))
        a = np.vstack([rows, grad_q])
        _, best = full_qp(a @ a.T, RHO - rows @ grad_q / q_norm2, RHO * q_norm2)
        assert np.all(lam >= 0) and abs(lam.sum() - 1) < 1e-9
        assert value <= best + 1e-7 * np.trace(a @ a.T), (value, best)


def test_a_solved_lower_level_gives_mgda_on_the_normalised_upper_gradients(rng):
    """Training targets the model fits exactly: every lower-level gradient and ∇q vanish, so
    d = Σ_t λ_t ĝ_t with λ MGDA's weights on the normalised meta gradients."""
    theta, train, meta, shapes = random_problem(rng, 3)
    w, v = unpack(theta, shapes)
    train = (train[0], train[0] @ w @ v.T)
    grads, losses, lambdas, state = run_update(FORUM, theta, train, meta, shapes)
    np.testing.assert_allclose(losses, 0.0, atol=1e-20)
    upper = np_jacobian(theta, meta, shapes)
    normalised = upper / (np.linalg.norm(upper, axis=1, keepdims=True) + EPS)
    gamma = simplex_qp(normalised @ normalised.T)
    np.testing.assert_allclose(grads, gamma @ normalised, atol=1e-3 * np.abs(grads).max())
    np.testing.assert_allclose(np.asarray(state.logits), 1.0 / 3)  # ∇_α q = 0: α does not move


def test_lambda_is_averaged_with_the_decaying_rate():
    rates = np.asarray(momentum_rate(jnp.arange(6), 2))
    np.testing.assert_allclose(rates, [1, 1, 2 ** -0.75, 2 ** -0.75, 3 ** -0.75, 3 ** -0.75], rtol=1e-6)


def test_second_step_averages_lambda(rng):
    theta, train, meta, shapes = random_problem(rng, 3)
    _, _, first, state = run_update(FORUM, theta, train, meta, shapes, step=0)
    _, _, averaged, _ = run_update(FORUM, theta, train, meta, shapes, state=state, step=1)
    fresh = run_update(FORUM, theta, train, meta, shapes, state=state._replace(lambdas=state.lambdas * 0), step=0)[2]
    np.testing.assert_allclose(averaged, first + 2 ** -0.75 * (fresh - first), rtol=1e-6, atol=1e-9)


def test_options_are_checked():
    with pytest.raises(ValueError, match="rho"):
        forum(rho=0.0)
    with pytest.raises(ValueError, match="inner_steps"):
        forum(inner_steps=0)
    with pytest.raises(ValueError, match="momentum_period"):
        forum(momentum_period=1.5)
    assert forum().modes == ("full",)

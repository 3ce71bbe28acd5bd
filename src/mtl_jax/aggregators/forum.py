"""FORUM — a first-order multi-gradient method for multi-objective bi-level optimisation.

Ye, Lin, Cao, Zhang & Tsang, "A First-Order Multi-Gradient Algorithm for Multi-Objective
Bi-Level Optimization", ECAI 2024 (arXiv:2401.09257), Sec. 3, and the authors' MTL code
(``train_FORUM`` in their LibMTL-based repository). Multi-task learning as a bi-level
problem: upper-level objectives F_t(α, ω) = L_t(ω; B_meta), lower level
f(α, ω) = Σ_t softmax(α)_t L_t(ω; B_train), where ω are all the network's parameters and α
the logits of the loss weights.

Value-function reformulation (their eq. 4–6): with z = (α, ω),

    min_z F(z)   s.t.   q(z) = f(α, ω) − f(α, ω_K) ≤ 0,                               (8)

where ω_K comes from K gradient steps ω_{k+1} = ω_k − η ∇_ω f(α, ω_k), ω_0 = ω, approximates
the lower level's optimum; ω_K is held fixed when differentiating, so every gradient is first
order:  ∇q = (∇_α f(α, ω) − ∇_α f(α, ω_K),  ∇_ω f(α, ω)).

Per step, with the upper-level gradients l2-normalised as in the authors' code,
ĝ_t = ∇_ω L_t / ‖∇_ω L_t‖ and F_t = (0, ĝ_t) ∈ R^{T+P}:

    π_t = ρ − ⟨F_t, ∇q⟩ / ‖∇q‖²,   c = ρ ‖∇q‖²,                                      (9)
    (λ̃, ν̃) = argmin_{λ ∈ Δ_T, ν ≥ 0, ν ≥ πᵀλ}  ‖Σ_t λ_t F_t + ν ∇q‖² − c ν,          (10)
    λ ← λ + β_k (λ̃ − λ),   β_k = (1 + ⌊k / period⌋)^{-3/4},                         (11)
    ν = max(0, πᵀλ),   d = Σ_t λ_t F_t + ν ∇q,                                         (12)

(10) is the authors' problem (14) as their code solves it (cvxpy), (11) their averaging of
λ (advanced once per epoch there: set ``momentum_period`` to an epoch's steps to match; the
default advances it every step), (12) their direction. α takes an Adam step (lr 1e-3) along
d_α = ν ∇_α q and the network gets d_ω = Σ_t λ_t ĝ_t + ν ∇_ω f as its gradient.

Solving (10). For fixed λ the objective is a convex parabola in ν whose minimum lies at
πᵀλ − ρ/2, below the bound, so ν̃ = max(0, πᵀλ) and (10) reduces to the convex, piecewise
quadratic problem min_{λ∈Δ} h(λ) with h(λ) = ‖Σλ_t F_t + ν(λ)∇q‖² − c ν(λ). It is solved on
the T×T Gramian of the ĝ_t, the inner products ⟨ĝ_t, ∇_ω f⟩ and ‖∇q‖² (no parameter-sized
work) by accelerated projected gradient (FISTA) with a fixed budget, step 1/(2 tr G). With
∇q = 0 (the lower level already solved) it is MGDA on the normalised gradients. ‖∇q‖² and
the gradient norms get +1e-8, as in the authors' code.

Options: ``rho`` ρ (0.1), ``inner_learning_rate`` η (0.1), ``inner_steps`` K (5),
``meta_learning_rate`` (1e-3), ``momentum_period`` (1), ``solver_iterations`` (300). The
step's ``weights`` metric is λ after (11).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregators.kinds import MetaInputs, MetaUpdate, MetaWeighting
from mtl_jax.aggregators.lookahead import (
    LossFn,
    look_ahead,
    row_gramian,
    softmax_jacobian,
    task_gradients,
    tree_dot,
    weighted_gradient,
)
from mtl_jax.aggregators.simplex import project_onto_simplex
from mtl_jax.types import PyTree

DEFAULT_RHO = 0.1
DEFAULT_INNER_LEARNING_RATE = 0.1
DEFAULT_INNER_STEPS = 5
DEFAULT_META_LEARNING_RATE = 1e-3
DEFAULT_MOMENTUM_PERIOD = 1
DEFAULT_SOLVER_ITERATIONS = 300
EPS = 1e-8
MOMENTUM_POWER = 0.75


class FORUMState(NamedTuple):
    """FORUM's loss-weight logits, their Adam state and the averaged multipliers.

    Attributes:
      lambdas: (T,) λ of eq. 11 (zero before the first step).
      logits: (T,) α.
      opt_state: the state of α's Adam optimiser.
    """

    lambdas: jax.Array
    logits: jax.Array
    opt_state: optax.OptState


class Subproblem(NamedTuple):
    """The data of (10) in Gramian form.

    Attributes:
      gramian: (T, T) ⟨F_s, F_t⟩.
      cross: (T,) ⟨F_t, ∇q⟩.
      q_norm2: ‖∇q‖² + ε.
      rho: ρ.
    """

    gramian: jax.Array
    cross: jax.Array
    q_norm2: jax.Array
    rho: float

    @property
    def pi(self) -> jax.Array:
        """π of eq. 9."""
        return self.rho - self.cross / self.q_norm2


def multiplier(problem: Subproblem, lambdas: jax.Array) -> jax.Array:
    """ν = max(0, πᵀλ) (eq. 12, and ν̃ of eq. 10)."""
    return jnp.maximum(jnp.dot(problem.pi, lambdas), 0.0)


def reduced_objective(problem: Subproblem, lambdas: jax.Array) -> jax.Array:
    """h(λ) = ‖Σλ_t F_t + ν∇q‖² − cν with ν = max(0, πᵀλ), c = ρ‖∇q‖²."""
    nu = multiplier(problem, lambdas)
    quadratic = lambdas @ problem.gramian @ lambdas + 2.0 * nu * jnp.dot(problem.cross, lambdas)
    return quadratic + nu * nu * problem.q_norm2 - problem.rho * problem.q_norm2 * nu


def solve_subproblem(problem: Subproblem, iterations: int = DEFAULT_SOLVER_ITERATIONS) -> jax.Array:
    """λ̃ of (10): FISTA on h over the simplex, from uniform weights, fixed budget."""
    num_tasks = problem.gramian.shape[0]
    step = 1.0 / (2.0 * jnp.maximum(jnp.trace(problem.gramian), EPS))
    gradient = jax.grad(lambda lam: reduced_objective(problem, lam))
    start = jnp.full((num_tasks,), 1.0 / num_tasks, problem.gramian.dtype)

    def body(k, carry):
        lam, previous = carry
        probe = lam + (k / (k + 3.0)) * (lam - previous)
        return project_onto_simplex(probe - step * gradient(probe)), lam

    lam, _ = jax.lax.fori_loop(0, iterations, body, (start, start))
    return lam


def momentum_rate(step: jax.Array, period: int) -> jax.Array:
    """β_k = (1 + ⌊k / period⌋)^{-3/4} of eq. 11 (β_0 = 1)."""
    return (1.0 + (step // period).astype(jnp.float32)) ** -MOMENTUM_POWER


class FORUMPieces(NamedTuple):
    """The gradients of one step.

    Attributes:
      losses: (T,) the training losses at ω.
      normalised: the rows ĝ_t (every leaf leads with the task axis).
      lower_grad: ∇_ω f(α, ω).
      q_alpha: (T,) ∇_α q.
      problem: the data of (10).
    """

    losses: jax.Array
    normalised: PyTree
    lower_grad: PyTree
    q_alpha: jax.Array
    problem: Subproblem


def forum_pieces(
    loss_fn: LossFn, params: PyTree, batch: PyTree, meta_batch: PyTree, logits: jax.Array,
    rho: float, inner_learning_rate: float, inner_steps: int,
) -> FORUMPieces:
    """Every gradient of one FORUM step (eq. 8–9)."""
    weights = jax.nn.softmax(jax.lax.stop_gradient(logits))
    losses, lower_grad = weighted_gradient(loss_fn, params, batch, weights)

    def inner(_, omega):
        return look_ahead(omega, weighted_gradient(loss_fn, omega, batch, weights)[1], inner_learning_rate)

    omega_k = jax.lax.fori_loop(0, inner_steps, inner, params)
    losses_k = jax.lax.stop_gradient(loss_fn(omega_k, batch))
    jac_softmax = softmax_jacobian(logits).astype(losses.dtype)
    q_alpha = jac_softmax @ (losses - losses_k)  # ∇_α f(α, ω) − ∇_α f(α, ω_K)
    _, upper_rows = task_gradients(loss_fn, params, meta_batch)
    norms = jnp.sqrt(jnp.maximum(jnp.diagonal(row_gramian(upper_rows)), 0.0))
    normalised = jax.tree.map(
        lambda rows: rows / (norms.reshape((-1,) + (1,) * (rows.ndim - 1)) + EPS).astype(rows.dtype), upper_rows
    )
    cross = jax.vmap(lambda row: tree_dot(row, lower_grad))(normalised)
    q_norm2 = jnp.dot(q_alpha, q_alpha) + tree_dot(lower_grad, lower_grad) + EPS
    problem = Subproblem(row_gramian(normalised), cross, q_norm2, rho)
    return FORUMPieces(losses, normalised, lower_grad, q_alpha, problem)


def forum(
    rho: float = DEFAULT_RHO,
    inner_learning_rate: float = DEFAULT_INNER_LEARNING_RATE,
    inner_steps: int = DEFAULT_INNER_STEPS,
    meta_learning_rate: float = DEFAULT_META_LEARNING_RATE,
    momentum_period: int = DEFAULT_MOMENTUM_PERIOD,
    solver_iterations: int = DEFAULT_SOLVER_ITERATIONS,
) -> MetaWeighting:
    """FORUM (Ye et al. 2024, rho=0.1, eta=0.1, K=5): first-order multi-objective bi-level MTL via a value-function constraint.

    Raises ValueError for ρ ≤ 0, a non-positive learning rate, K < 1, a period < 1 or a
    solver budget < 1.
    """
    if rho <= 0.0 or inner_learning_rate <= 0.0 or meta_learning_rate <= 0.0:
        raise ValueError(
            f"forum needs rho > 0, inner_learning_rate > 0 and meta_learning_rate > 0, got"
            f" {rho}, {inner_learning_rate}, {meta_learning_rate}"
        )
    for name, value in (("inner_steps", inner_steps), ("momentum_period", momentum_period),
                        ("solver_iterations", solver_iterations)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"forum needs {name} to be an integer >= 1, got {value!r}")
    optimizer = optax.adam(meta_learning_rate)

    def init(num_tasks: int) -> FORUMState:
        logits = jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32)
        return FORUMState(lambdas=jnp.zeros((num_tasks,), jnp.float32), logits=logits, opt_state=optimizer.init(logits))

    def update(inputs: MetaInputs, state: FORUMState) -> MetaUpdate:
        pieces = forum_pieces(
            inputs.loss_fn, inputs.params, inputs.batch, inputs.meta_batch, state.logits,
            rho, inner_learning_rate, inner_steps,
        )  # fmt: skip
        target = solve_subproblem(pieces.problem, solver_iterations)
        beta = momentum_rate(inputs.step, momentum_period).astype(target.dtype)
        lambdas = state.lambdas.astype(target.dtype) + beta * (target - state.lambdas.astype(target.dtype))
        nu = multiplier(pieces.problem, lambdas)
        grads = jax.tree.map(
            lambda rows, lower: (jnp.tensordot(lambdas.astype(rows.dtype), rows, 1) + nu.astype(lower.dtype) * lower),
            pieces.normalised, pieces.lower_grad,
        )  # fmt: skip
        direction = (nu * pieces.q_alpha).astype(jnp.float32)
        updates, opt_state = optimizer.update(direction, state.opt_state, state.logits)
        logits = optax.apply_updates(state.logits, updates)
        new_state = FORUMState(lambdas=lambdas.astype(jnp.float32), logits=logits, opt_state=opt_state)
        return MetaUpdate(grads, pieces.losses, lambdas.astype(pieces.losses.dtype), new_state)

    return MetaWeighting("forum", init, update)

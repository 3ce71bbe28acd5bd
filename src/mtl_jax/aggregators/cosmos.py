"""COSMOS — Ruchte & Grabocka, "Scalable Pareto Front Approximation for Deep Multi-Objective
Learning", ICDM 2021 (the COSMOS objective; equation numbers below are this docstring's).

For a preference ray r on the simplex, COSMOS minimises the linear scalarisation with a
cosine penalty that pulls the loss vector L = (L_1, …, L_T) towards the ray:

    f(L) = Σ_t r_t L_t − λ · cos(r, L),   cos(r, L) = rᵀL / (‖r‖ ‖L‖).             (1)

The shared update is the gradient of f through the losses, d = Σ_t (∂f/∂L_t) g_t = Jᵀw with

    w = ∂f/∂L = r − λ ( r / (‖r‖‖L‖) − (rᵀL) L / (‖r‖ ‖L‖³) ),

so COSMOS is a loss weighting: one backward pass of Σ_t w_t L_t with w held fixed gives
exactly ∇f. The penalty's gradient is orthogonal to L and scales as 1/‖L‖; where ‖L‖ = 0 it
is undefined and w = r (the linear part alone). Weights may be negative.

Deviation from the paper: COSMOS also feeds r to the network as an input (one model
conditioned on the preference, tracing the Pareto front). Our models take no preference
input, so one run follows one ray: a fixed ``preference`` (default uniform, 1/T each), or,
with ``dirichlet_alpha`` = α > 0, a fresh r ~ Dir(α, …, α) every step from the step key (the
paper's sampling of rays), identical on every device.

Options: ``penalty`` λ ≥ 0 (default 1.0, ours; the paper tunes λ per data set),
``preference`` (T non-negative numbers, not all zero; normalised to sum 1),
``dirichlet_alpha`` (> 0; excludes ``preference``).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, LossWeighting, WeightingInputs, float_dtype

DEFAULT_PENALTY = 1.0


def check_preference(method: str, preference: Sequence[float] | None, num_tasks: int | None = None) -> tuple[float, ...] | None:
    """The preference ray normalised to sum 1, or None; ValueError naming the problem."""
    if preference is None:
        return None
    if isinstance(preference, (str, bytes)) or not isinstance(preference, Sequence):
        raise ValueError(f"{method} needs preference as a list of numbers, got {preference!r}")
    values = tuple(preference)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{method} needs numbers in preference, got {list(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{method} needs a preference of non-negative numbers, not all zero, got {list(values)}")
    if num_tasks is not None and len(values) != num_tasks:
        raise ValueError(f"{method} got a preference of {len(values)} numbers for {num_tasks} tasks")
    total = sum(values)
    return tuple(v / total for v in values)


def check_non_negative(method: str, option: str, value: float) -> float:
    """``value`` as a float if it is a finite number ≥ 0; else ValueError."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{method} needs {option} to be a finite number ≥ 0, got {value!r}")
    return float(value)


def cosmos_weights(losses: jax.Array, preference: jax.Array, penalty: float) -> jax.Array:
    """w = ∂/∂L [rᵀL − λ cos(r, L)] (eq. 1); w = r where ‖L‖ = 0."""
    r = preference.astype(losses.dtype)
    loss_norm = jnp.linalg.norm(losses)
    ray_norm = jnp.linalg.norm(r)
    safe_norm = jnp.where(loss_norm > 0, loss_norm, 1.0)
    cosine_gradient = r / (ray_norm * safe_norm) - (r @ losses) * losses / (ray_norm * safe_norm**3)
    return r - penalty * jnp.where(loss_norm > 0, cosine_gradient, 0.0)


def sample_preference(key: jax.Array, num_tasks: int, alpha: float, dtype) -> jax.Array:
    """r ~ Dir(α, …, α), from the step key."""
    return jax.random.dirichlet(key, jnp.full((num_tasks,), alpha, jnp.float32)).astype(dtype)


def cosmos(
    penalty: float = DEFAULT_PENALTY,
    preference: Sequence[float] | None = None,
    dirichlet_alpha: float | None = None,
) -> LossWeighting:
    """COSMOS (Ruchte & Grabocka 2021): linear scalarisation minus λ·cos(preference, losses) (penalty=1, uniform preference).

    Raises ValueError for a negative or non-finite ``penalty``, a ``preference`` that is not
    non-negative numbers with a positive sum, a ``dirichlet_alpha`` ≤ 0, or both of the last
    two; ``init`` also for a preference whose length is not the number of tasks.
    """
    lam = check_non_negative("cosmos", "penalty", penalty)
    ray = check_preference("cosmos", preference)
    if dirichlet_alpha is not None:
        if ray is not None:
            raise ValueError("cosmos takes either preference (a fixed ray) or dirichlet_alpha (a sampled one), not both")
        alpha = check_non_negative("cosmos", "dirichlet_alpha", dirichlet_alpha)
        if alpha == 0:
            raise ValueError("cosmos needs dirichlet_alpha > 0, got 0")

    def init(num_tasks: int) -> EmptyState:
        check_preference("cosmos", ray, num_tasks)
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        losses = inputs.losses.astype(float_dtype(inputs.losses))
        num_tasks = losses.shape[0]
        if dirichlet_alpha is not None:
            r = sample_preference(inputs.key, num_tasks, float(dirichlet_alpha), losses.dtype)
        elif ray is not None:
            check_preference("cosmos", ray, num_tasks)
            r = jnp.asarray(ray, losses.dtype)
        else:
            r = jnp.full((num_tasks,), 1.0 / num_tasks, losses.dtype)
        return cosmos_weights(losses, r, lam), state

    return LossWeighting("cosmos", init, weigh)

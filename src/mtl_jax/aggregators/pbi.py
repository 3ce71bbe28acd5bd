"""PBI — penalty-based boundary intersection, Zhang & Li, "MOEA/D: A Multiobjective
Evolutionary Algorithm Based on Decomposition", IEEE Trans. Evol. Comput. 11(6), 2007,
Sec. II-C, used here as a scalarisation of the task losses.

For a preference (weight) vector λ ≥ 0, its unit direction u = λ/‖λ‖ and an ideal point z*,
PBI minimises the distance d1 travelled along the ray from z* plus θ times the distance d2
from the ray:

    g(L) = d1 + θ d2,   d1 = |(L − z*)ᵀu|,   d2 = ‖L − (z* + d1 u)‖.                  (1)

The shared update is the gradient of g through the losses, d = Jᵀw with w = ∂g/∂L: with
y = L − z*, p = yᵀu, s = sign(p) (s = 1 at p = 0) and e = y − d1 u,

    w = s u + θ (I − s u uᵀ) e / d2,                                                 (2)

the second term taken as 0 where d2 = 0 (L on the ray, up to round-off; a subgradient). When p ≥ 0 (the usual case: losses
above the ideal point), e is the component of y orthogonal to u and (2) reads
w = u + θ e/‖e‖. A loss weighting: one backward pass of Σ_t w_t L_t with w fixed gives ∇g.

Ideal point: ``ideal="zero"`` (default) takes z* = 0, a lower bound of every loss;
``ideal="running_min"`` is MOEA/D's update, z*_t = the smallest L_t seen so far (this
step's losses included), kept in the aggregator state.

Options: ``theta`` θ ≥ 0 (default 5, the paper's), ``preference`` (T non-negative numbers,
not all zero; default uniform), ``ideal`` ("zero" or "running_min").
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.cosmos import check_non_negative, check_preference
from mtl_jax.aggregators.kinds import EmptyState, LossWeighting, WeightingInputs, float_dtype

DEFAULT_THETA = 5.0
IDEALS = ("zero", "running_min")
ON_RAY_TOLERANCE = 64.0


class PBIState(NamedTuple):
    """ideal: (T,) the smallest loss seen so far per task (``ideal="running_min"``)."""

    ideal: jax.Array


def pbi_weights(losses: jax.Array, preference: jax.Array, ideal: jax.Array, theta: float) -> jax.Array:
    """w = ∂/∂L [d1 + θ d2] (eq. 2), the d2 term 0 where L lies on the ray.

    "On the ray" means d2 ≤ 64·eps·‖L − z*‖: a residual of that size is round-off, and its
    direction e/d2 (a unit vector, scaled by θ) would be noise.
    """
    direction = preference / jnp.linalg.norm(preference)
    offset = losses - ideal
    along = offset @ direction
    sign = jnp.where(along >= 0, 1.0, -1.0).astype(losses.dtype)
    residual = offset - jnp.abs(along) * direction
    distance = jnp.linalg.norm(residual)
    off_ray = distance > ON_RAY_TOLERANCE * jnp.finfo(losses.dtype).eps * jnp.linalg.norm(offset)
    safe = jnp.where(off_ray, distance, 1.0)
    orthogonal = (residual - sign * direction * (direction @ residual)) / safe
    return sign * direction + theta * jnp.where(off_ray, orthogonal, 0.0)


def pbi(theta: float = DEFAULT_THETA, preference: Sequence[float] | None = None, ideal: str = "zero") -> LossWeighting:
    """PBI (Zhang & Li 2007, MOEA/D): distance along the preference ray + θ × distance from it (theta=5, uniform preference, ideal=zero).

    Raises ValueError for a negative or non-finite ``theta``, a ``preference`` that is not
    non-negative numbers with a positive sum, or an unknown ``ideal``; ``init`` also for a
    preference whose length is not the number of tasks.
    """
    penalty = check_non_negative("pbi", "theta", theta)
    ray = check_preference("pbi", preference)
    if ideal not in IDEALS:
        raise ValueError(f"pbi needs ideal to be one of {', '.join(map(repr, IDEALS))}, got {ideal!r}")

    def init(num_tasks: int):
        check_preference("pbi", ray, num_tasks)
        if ideal == "running_min":
            return PBIState(ideal=jnp.full((num_tasks,), jnp.inf, jnp.float32))
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        losses = inputs.losses.astype(float_dtype(inputs.losses))
        num_tasks = losses.shape[0]
        if ray is None:
            r = jnp.full((num_tasks,), 1.0 / num_tasks, losses.dtype)
        else:
            check_preference("pbi", ray, num_tasks)
            r = jnp.asarray(ray, losses.dtype)
        if ideal == "running_min":
            lowest = jnp.minimum(state.ideal, losses.astype(state.ideal.dtype))
            return pbi_weights(losses, r, lowest.astype(losses.dtype), penalty), PBIState(ideal=lowest)
        return pbi_weights(losses, r, jnp.zeros_like(losses), penalty), state

    return LossWeighting("pbi", init, weigh)

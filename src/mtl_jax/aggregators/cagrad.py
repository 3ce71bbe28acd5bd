"""CAGrad — Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021.

CAGrad maximises the worst-case task improvement within a ball around the mean gradient
g0 = (1/T) Σ_i g_i (Sec. 3.1):

    max_d min_i ⟨g_i, d⟩   s.t.  ‖d − g0‖ ≤ c ‖g0‖,          c ∈ [0, 1), default c = 0.4.

Its dual (Sec. 3.1 / Alg. 1) is a problem on the simplex,

    min_{w ∈ simplex} F(w) = ⟨g_w, g0⟩ + √φ ‖g_w‖,   φ = c² ‖g0‖²,   g_w = Σ_i w_i g_i,

and the update is d = g0 + (√φ / ‖g_w‖) g_w, i.e. the weights 1/T + (√φ / ‖g_w‖) w.

Solver (inside ``jit``): F is not a QP, but ‖x‖ = min_{τ>0} (‖x‖²/(2τ) + τ/2) makes
ψ(τ) = min_w ⟨g_w, g0⟩ + √φ ‖g_w‖²/(2τ) + √φ τ/2 jointly convex; for fixed τ the inner
minimiser is the min-norm point of the hull of the shifted gradients g_i + (τ/c) ĝ0
(ĝ0 = g0/‖g0‖; ``qp.shifted_gramian`` + ``qp.min_norm_in_hull``), and by the envelope theorem
ψ'(τ) ≥ 0 ⇔ ‖g_{w(τ)}‖ ≤ τ. The optimum τ* = ‖g_{w*}‖ lies in [0, max_i ‖g_i‖]; it is found by
bisection with a fixed budget of 32 halvings (bracket 2^-32 · max_i ‖g_i‖, below float32
resolution), each inner solve warm-started from the previous one.

Degenerate cases:
- a task with an exactly zero gradient is left out of the dual's simplex. Its ⟨g_i, d⟩ = 0
  for every d, so with it the primal value is min(0, F*_rest) and the dual optimum may sit at
  g_w = 0 where the paper's d is undefined; the d of the remaining tasks is primal-optimal
  for the full problem in both cases (the primal optimum is then not unique);
- g0 = 0 (c·‖g0‖ = 0) gives d = g0 (weights 1/T); if the optimum still has g_w = 0 (0 in
  the hull of the remaining gradients and F* = 0) the weights fall back to 1/T as well.

``rescale=True`` divides the update by 1 + c², as in the authors' released code
(not in the paper's Alg. 1; off by default).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.base import Aggregator, WeightingInputs, no_state
from mtl_jax.aggregators.qp import min_norm_in_hull, shifted_gramian

_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)

BISECTION_STEPS = 32


def cagrad_weights(gramian: jax.Array, c: float = 0.4, rescale: bool = False) -> jax.Array:
    """w with Jᵀw = g0 + c‖g0‖ g_{w*}/‖g_{w*}‖ (divided by 1 + c² if ``rescale``)."""
    num_tasks = gramian.shape[0]
    dtype = gramian.dtype
    eps = float(jnp.finfo(dtype).eps)
    mean_weights = jnp.full((num_tasks,), 1.0 / num_tasks, dtype)
    inner_mean = _matmul(gramian, mean_weights)  # ⟨g_i, g0⟩
    g0_sq = jnp.maximum(mean_weights @ inner_mean, 0.0)
    g0_norm = jnp.sqrt(g0_sq)
    max_sq = jnp.maximum(jnp.max(jnp.diagonal(gramian)), 0.0)
    degenerate = (c == 0.0) | (g0_sq <= eps**2 * max_sq) | (max_sq == 0.0)
    safe_g0_norm = jnp.where(degenerate, 1.0, g0_norm)
    inner_unit = inner_mean / safe_g0_norm  # ⟨g_i, ĝ0⟩
    radius = c * g0_norm  # √φ

    # Tasks with an exactly zero gradient are left out of the dual (see module doc).
    nonzero = jnp.diagonal(gramian) > 0
    nonzero = jnp.where(jnp.any(nonzero), nonzero, True)

    def inner_solve(tau, init):
        shift = tau / c if c > 0 else jnp.zeros((), dtype)  # ‖shift‖ = τ/c
        shifted = shifted_gramian(gramian, shift * inner_unit, shift**2)
        return min_norm_in_hull(shifted, init, allowed=nonzero)

    def bisect(_, carry):
        lo, hi, z = carry
        tau = 0.5 * (lo + hi)
        w, z = inner_solve(tau, z)
        gw_sq = w @ _matmul(gramian, w)
        increasing = gw_sq <= tau**2  # ψ'(τ) ≥ 0: the optimum is at or left of τ
        return jnp.where(increasing, lo, tau), jnp.where(increasing, tau, hi), z

    hi0 = jnp.sqrt(max_sq)
    z0 = jnp.zeros((num_tasks,), dtype)
    lo, hi, z = jax.lax.fori_loop(0, BISECTION_STEPS, bisect, (jnp.zeros((), dtype), hi0, z0))
    w, _ = inner_solve(0.5 * (lo + hi), z)
    gw_norm = jnp.sqrt(jnp.maximum(w @ _matmul(gramian, w), 0.0))
    fallback = degenerate | (gw_norm <= eps * hi0)
    coef = radius / jnp.where(fallback, 1.0, gw_norm)
    weights = jnp.where(fallback, mean_weights, mean_weights + coef * w)
    if rescale:
        weights = weights / (1.0 + c**2)
    return weights


def _weigh(inputs: WeightingInputs, state, c: float, rescale: bool):
    return cagrad_weights(inputs.gramian, c, rescale), state


def cagrad(c: float = 0.4, rescale: bool = False) -> Aggregator:
    """CAGrad with conflict-aversion radius c (default 0.4) around the mean gradient."""
    if not 0.0 <= c < 1.0:
        raise ValueError(f"CAGrad needs 0 <= c < 1, got {c}")
    return Aggregator(
        "cagrad", no_state, functools.partial(_weigh, c=float(c), rescale=bool(rescale))
    )

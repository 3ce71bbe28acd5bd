"""CAGrad — Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021.

CAGrad maximises the worst-case task improvement within a ball around the mean gradient
g0 = (1/T) Σ_i g_i (Sec. 3.1):

    max_d min_i ⟨g_i, d⟩   s.t.  ‖d − g0‖ ≤ c ‖g0‖,          c ∈ [0, 1), default c = 0.4.

Its dual (Sec. 3.1 / Alg. 1) is a problem on the simplex,

    min_{w ∈ simplex} F(w) = ⟨g_w, g0⟩ + √φ ‖g_w‖,   φ = c² ‖g0‖²,   g_w = Σ_i w_i g_i,

and the update is d = g0 + (√φ / ‖g_w‖) g_w, i.e. the weights 1/T + (√φ / ‖g_w‖) w.

Two solvers inside ``jit``, chosen at lowering time (``jax.lax.platform_dependent``): on
CPUs the bisection below (loops are cheap there: ~140 µs at T=8), on accelerators for
T ≤ ``qp.MAX_ENUMERATED_TASKS`` a loop-free closed form (H200, T=8: 13,197 → 39 µs; each
while-loop iteration costs a host round-trip on GPUs).

Closed form: on the simplex, the
minimiser w* lies in the relative interior of a face S where, generically, the g_i (i ∈ S)
are linearly independent (Ĝ = G_SS non-singular). Its KKT conditions there,
g0-term + √φ Ĝ w/‖g_w‖ = μ1 and 1ᵀw = 1, have a closed form: with u = Ĝ⁻¹1, v = Ĝ⁻¹b
(b_i = ⟨g_i, g0⟩), a = 1ᵀu, β = 1ᵀv, γ = bᵀv,

    w = (μu − v)/√Δ,   μ = (β + √Δ)/a,   Δ = β² − a(γ − φ),    ‖g_w‖ = √φ/√Δ.

All 2^T supports are solved at once (``qp.solve_on_supports``: one unrolled Gauss–Jordan
elimination, no loop, no LAPACK), and among the candidates that are feasible (Δ > 0,
w_S ≥ −32·eps, Ĝ_SS non-singular to a relative pivot of 128·eps) the one with the least F
wins — F(w) ≥ F* for every feasible w, so this is the exact minimiser. The only optima
this misses have F* = 0 with 0 in the affine hull of the face (non-generic; d = g0 is then
optimal too). 0 in the hull of the g_i (detected by ``qp.min_norm_in_hull``, ‖g_w‖² ≤
64·eps·max_i ‖g_i‖²) with best F ≥ 0 means g_w = 0 is optimal: weights 1/T (below).
Bisection (CPUs, and every platform for T > ``qp.MAX_ENUMERATED_TASKS``, where 2^T
candidates would be too many): ‖x‖ = min_{τ>0} (‖x‖²/(2τ) + τ/2) makes
ψ(τ) = min_w ⟨g_w, g0⟩ + √φ ‖g_w‖²/(2τ) + √φ τ/2 jointly convex; for fixed τ the inner
minimiser is the min-norm point of the hull of the shifted gradients g_i + (τ/c) ĝ0
(``qp.shifted_gramian`` + ``qp.min_norm_in_hull``), ψ'(τ) ≥ 0 ⇔ ‖g_{w(τ)}‖ ≤ τ, and
τ* ∈ [0, max_i ‖g_i‖] is found by 32 bisection steps.

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

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import (
    MAX_ENUMERATED_TASKS,
    by_platform,
    min_norm_in_hull,
    shifted_gramian,
    solve_on_supports,
    support_masks,
)
from mtl_jax.aggregators.small_solve import matvec

_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)
BISECTION_STEPS = 32


def _support_candidates(gram: jax.Array, inner: jax.Array, phi: jax.Array, allowed: jax.Array):
    """(weights (2^T, T), F values (2^T,)) of the closed-form KKT point on every support;
    F = +inf where the support has no feasible stationary point (see module doc)."""
    num = gram.shape[0]
    eps = float(jnp.finfo(gram.dtype).eps)
    masks = support_masks(num)
    ones = jnp.ones((num,), gram.dtype)
    solutions, nonsingular = solve_on_supports(gram, jnp.stack([ones, inner], axis=1), masks)
    u, v = solutions[..., 0], solutions[..., 1]
    a = jnp.sum(u, axis=1)
    beta = jnp.sum(v, axis=1)
    gamma = jnp.sum(inner[None] * v, axis=1)
    delta = beta**2 - a * (gamma - phi)
    good = nonsingular & (a > 0) & (delta > 0)
    root = jnp.sqrt(jnp.where(good, delta, 1.0))
    mu = (beta + root) / jnp.where(good, a, 1.0)
    w = (mu[:, None] * u - v) / root[:, None]
    in_allowed = jnp.all(jnp.where(jnp.asarray(masks), allowed[None, :], True), axis=1)
    largest = jnp.max(jnp.abs(w), axis=1, keepdims=True)
    good = good & in_allowed & jnp.all(w >= -32 * eps * largest, axis=1) & jnp.any(jnp.asarray(masks), axis=1)
    w = jnp.maximum(w, 0.0)
    total = jnp.sum(w, axis=1, keepdims=True)
    w = w / jnp.where(total > 0, total, 1.0)
    value = jnp.sum(w * inner[None], axis=1) + jnp.sqrt(phi) * jnp.sqrt(
        jnp.maximum(jnp.sum(w * matvec(gram[None], w), axis=1), 0.0)
    )
    return w, jnp.where(good & (total[:, 0] > 0), value, jnp.inf)


def cagrad_weights(gramian: jax.Array, c: float = 0.4, rescale: bool = False) -> jax.Array:
    """w with Jᵀw = g0 + c‖g0‖ g_{w*}/‖g_{w*}‖ (divided by 1 + c² if ``rescale``)."""
    num_tasks = gramian.shape[0]
    dtype = gramian.dtype
    eps = float(jnp.finfo(dtype).eps)
    mean_weights = jnp.full((num_tasks,), 1.0 / num_tasks, dtype)
    max_sq = jnp.maximum(jnp.max(jnp.diagonal(gramian)), 0.0)
    scale = jnp.where(max_sq > 0, max_sq, 1.0)
    gram = gramian / scale  # scale-free: max_i ‖g_i‖² = 1
    inner_mean = matvec(gram, mean_weights)  # ⟨g_i, g0⟩ / scale
    g0_sq = jnp.maximum(jnp.sum(mean_weights * inner_mean), 0.0)
    degenerate = (c == 0.0) | (g0_sq <= eps**2) | (max_sq == 0.0)
    phi = c**2 * g0_sq
    radius = jnp.sqrt(phi)  # √φ in units of sqrt(scale)

    # Tasks with an exactly zero gradient are left out of the dual (see module doc).
    nonzero = jnp.diagonal(gramian) > 0
    nonzero = jnp.where(jnp.any(nonzero), nonzero, True)

    if num_tasks > MAX_ENUMERATED_TASKS:
        weights = _bisection_weights(gramian, c)
    else:
        # CPUs: the bisection (cheap there); accelerators: the loop-free closed form.
        weights = by_platform(
            (gramian,), cpu=lambda g: _bisection_weights(g, c),
            accelerator=lambda g: _closed_form_weights(gram, inner_mean, phi, nonzero, mean_weights, degenerate, radius),
        )  # fmt: skip
    return weights / (1.0 + c**2) if rescale else weights


def _closed_form_weights(gram, inner_mean, phi, nonzero, mean_weights, degenerate, radius) -> jax.Array:
    """CAGrad's weights from the best support's closed-form KKT point (module doc), on the
    Gramian ``gram`` scaled to max_i ‖g_i‖² = 1."""
    eps = float(jnp.finfo(gram.dtype).eps)
    candidates, values = _support_candidates(gram, inner_mean, phi, nonzero)
    best = jnp.argmin(values)
    w, best_value = candidates[best], values[best]
    hull_weights, _ = min_norm_in_hull(gram, allowed=nonzero)
    zero_in_hull = jnp.sum(hull_weights * matvec(gram, hull_weights)) <= 64 * eps
    gw_norm = jnp.sqrt(jnp.maximum(jnp.sum(w * matvec(gram, w)), 0.0))
    fallback = (
        degenerate
        | ~jnp.isfinite(best_value)
        | (zero_in_hull & (best_value >= 0))
        | (gw_norm <= eps)
    )
    coef = radius / jnp.where(fallback, 1.0, gw_norm)
    return jnp.where(fallback, mean_weights, mean_weights + coef * w)


def _bisection_weights(gramian: jax.Array, c: float) -> jax.Array:
    """The T > ``MAX_ENUMERATED_TASKS`` path: bisection on τ (module doc), a rolled loop."""
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
    return weights


def _weigh(inputs: WeightingInputs, state, c: float, rescale: bool):
    return cagrad_weights(inputs.gramian, c, rescale), state


def cagrad(c: float = 0.4, rescale: bool = False) -> GramianWeighting:
    """CAGrad (Liu et al. 2021, c=0.4): best worst-case improvement near the mean gradient."""
    if not 0.0 <= c < 1.0:
        raise ValueError(f"CAGrad needs 0 <= c < 1, got {c}")
    return GramianWeighting(
        "cagrad", no_state, functools.partial(_weigh, c=float(c), rescale=bool(rescale))
    )

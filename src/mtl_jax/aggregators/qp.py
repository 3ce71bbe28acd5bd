"""Small solvers in T dimensions, shared by the aggregators that need an optimisation problem.

Everything here is a pure function of a (T, T) Gramian that runs inside ``jit`` and never
calls the host. On GPUs every iteration of an XLA ``while`` loop copies its predicate to the
host and waits (~10 µs), so the QP engine has two implementations chosen at lowering time
(``jax.lax.platform_dependent``): the sequential active-set method on CPUs, and for
T ≤ 10 a loop-free support enumeration on accelerators (measured on an H200 at T=8: MGDA
1,978 → 8.9 µs, UPGrad 273 → 12.8 µs, ``benchmarks/results/weighting_cost_h200*.jsonl``).

1. ``nonnegative_qp`` — the one quadratic-programming engine:

       min_z ½ zᵀQz + cᵀz   s.t.  z ≥ 0,          Q PSD, c ∈ range(Q)

   On accelerators, for T ≤ ``MAX_ENUMERATED_TASKS`` (10), it is solved *exactly and
   loop-free by enumerating the supports* (the finite-termination argument of the Lawson–Hanson active-set method,
   "Solving Least Squares Problems", 1974, Ch. 23, run in parallel rather than in sequence):
   some minimiser z* has a support S on which Q_SS is non-singular (a basic solution, the
   one Lawson–Hanson returns), and then z*_S solves Q_SS z_S = −c_S. So all 2^T systems are
   solved at once (one batched, unrolled Gauss–Jordan elimination of T steps, pivots
   ≤ 128·eps relative declared singular), each solution is kept if it is feasible
   (z_S ≥ −tol, clipped to 0) and satisfies the other KKT condition
   (Qz + c)_i ≥ −256·eps·scale off S; the feasible KKT point of least objective wins (if
   rounding certifies none, the feasible point of least objective). Cost O(2^T T³) flops in
   T sequential steps; memory 2^T·T² per problem. On CPUs, and for larger T, the
   Lawson–Hanson method runs sequentially (a ``lax.while_loop`` capped at 4T + 16
   active-set steps, eigen-decomposition pseudo-inverse on the free set): grow the free set
   by the coordinate with the most negative gradient, solve the equality-constrained
   sub-problem on the free set, step back to the boundary when that solution leaves the
   orthant (the "fast NNLS" of Bro & De Jong 1997 on the normal equations).

2. ``min_norm_in_hull`` — the min-norm point of the convex hull of the g_i,
   ``argmin_{w ∈ simplex} wᵀGw`` (MGDA and, after a shift of the points, SDMGrad).
   It reduces to (1) by the least-distance-programming trick (Lawson & Hanson,
   Ch. 23, LDP): with z ≥ 0 minimising ‖Jᵀz‖² + (1ᵀz − 1)², i.e. Q = G + 11ᵀ, c = −1, the
   KKT conditions read (Gz)_i ≥ 1 − 1ᵀz with equality where z_i > 0, so w = z / 1ᵀz
   satisfies the simplex KKT conditions (Gw)_i ≥ wᵀGw (equality on the support) exactly.
   1ᵀz > 0 always (z = 0 is not optimal), also when 0 is in the hull.

3. ``project_onto_dual_cone`` — weights of the projection of Jᵀu onto the dual cone
   {x : Jx ≥ 0}: ``argmin_{v ≥ u} vᵀGv`` (Quinton & Layne 2024, Prop. 1), i.e. (1) with
   v = u + z, Q = G, c = Gu. Used by UPGrad and DualProj.

4. ``inverse_power_weights`` — the positive solution of G w = w^{−1/α} (Nash-MTL for α = 1,
   FairGrad for general α). It is the unique minimiser of the strictly convex
   f(w) = ½ wᵀGw − Σ_i h(w_i) over w > 0, with h'(w) = w^{−1/α} (h = log for α = 1), and is
   found by Newton's method with a fraction-to-the-boundary rule and Armijo backtracking
   (all candidate step lengths are evaluated at once, no nested loop; full steps once the
   Newton decrement² is below 1/16), at most 100 steps,
   stopping when max_i |(Gw)_i w_i^{1/α} − 1| ≤ 64·eps(dtype).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators.small_solve import matvec, psd_solve

_matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)

# Largest T solved by support enumeration (2^T systems of size T; 10 → 1024·100 floats).
MAX_ENUMERATED_TASKS = 10


SOLVERS = ("cpu", "accelerator")
_forced_solver: list[str] = []  # set by ``force_solver`` (tests), read at trace time


@contextlib.contextmanager
def force_solver(kind: str) -> Iterator[None]:
    """Trace the ``cpu`` or the ``accelerator`` implementation whatever the platform.

    For tests of the accelerator path on a CPU-only machine. The choice is made when a
    function is traced: jit a fresh function inside the ``with`` block.
    """
    if kind not in SOLVERS:
        raise ValueError(f"unknown solver kind {kind!r}; accepted: {SOLVERS}")
    _forced_solver.append(kind)
    try:
        yield
    finally:
        _forced_solver.pop()


def by_platform(args: tuple, *, cpu: Callable[..., Any], accelerator: Callable[..., Any]) -> Any:
    """``cpu(*args)`` when lowered for CPUs, ``accelerator(*args)`` otherwise
    (``jax.lax.platform_dependent``), unless :func:`force_solver` says which."""
    if _forced_solver:
        return (cpu if _forced_solver[-1] == "cpu" else accelerator)(*args)
    return jax.lax.platform_dependent(*args, cpu=cpu, default=accelerator)


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def _masked_pinv_solve(quad: jax.Array, rhs: jax.Array, free: jax.Array) -> jax.Array:
    """Min-norm solution of Q_FF s_F = rhs_F, with s = 0 outside the free set F."""
    both = free[:, None] & free[None, :]
    block = jnp.where(both, quad, 0.0)
    evals, evecs = jnp.linalg.eigh(block)
    cutoff = 128 * _eps(quad.dtype) * jnp.maximum(jnp.max(jnp.abs(evals)), 1e-30)
    inv = jnp.where(jnp.abs(evals) > cutoff, 1.0 / jnp.where(evals == 0, 1.0, evals), 0.0)
    rhs_free = jnp.where(free, rhs, 0.0)
    solution = _matmul(evecs, inv * _matmul(evecs.T, rhs_free))
    return jnp.where(free, solution, 0.0)


def support_masks(num: int) -> np.ndarray:
    """(2^T, T) bool: row k is the support {i : bit i of k is set}; row 0 is empty."""
    index = np.arange(2**num)[:, None]
    return ((index >> np.arange(num)[None, :]) & 1).astype(bool)


def solve_on_supports(
    quad: jax.Array, rhs: jax.Array, masks: np.ndarray
) -> tuple[jax.Array, jax.Array]:
    """For every support S (row of ``masks``): X_S = Q_SS⁻¹ R_S, zero outside S.

    Args:
      quad: (T, T) symmetric PSD.
      rhs: (T, K) right-hand sides.
      masks: (N, T) bool supports.

    Returns:
      ``(X, nonsingular)``: (N, T, K) solutions and (N,) bool, False where Q_SS is singular
      (relative pivot ≤ 128·eps, see ``small_solve``).
    """
    num = quad.shape[0]
    masks = jnp.asarray(masks)
    both = masks[:, :, None] & masks[:, None, :]
    eye = jnp.eye(num, dtype=quad.dtype)
    systems = jnp.where(both, quad[None], eye[None])
    right = jnp.where(masks[:, :, None], rhs[None], 0.0)
    solutions, nonsingular = psd_solve(systems, right)
    return jnp.where(masks[:, :, None], solutions, 0.0), nonsingular


def _enumerated_nonnegative_qp(quad: jax.Array, linear: jax.Array, allowed: jax.Array) -> jax.Array:
    """argmin_{z ≥ 0, z = 0 off allowed} ½ zᵀQz + cᵀz by support enumeration (module doc)."""
    num = quad.shape[0]
    eps = _eps(quad.dtype)
    masks = support_masks(num)
    solutions, nonsingular = solve_on_supports(quad, -linear[:, None], masks)
    s = solutions[..., 0]
    in_allowed = jnp.all(jnp.where(jnp.asarray(masks), allowed[None, :], True), axis=1)
    largest = jnp.max(jnp.abs(s), axis=1, keepdims=True)
    feasible = nonsingular & in_allowed & jnp.all(s >= -32 * eps * largest, axis=1)
    z = jnp.maximum(s, 0.0)
    grad = matvec(quad[None], z) + linear[None]
    size = jnp.max(matvec(jnp.abs(quad)[None], z) + jnp.abs(linear)[None], axis=1, keepdims=True)
    dual_ok = jnp.all(
        jnp.asarray(masks) | ~allowed[None, :] | (grad >= -256 * eps * size), axis=1
    )
    objective = 0.5 * jnp.sum(z * (grad + linear[None]), axis=1)
    certified = feasible & dual_ok
    chosen = jnp.where(jnp.any(certified), certified, feasible)
    best = jnp.argmin(jnp.where(chosen, objective, jnp.inf))
    return z[best]


def nonnegative_qp(
    quad: jax.Array,
    linear: jax.Array,
    init: jax.Array | None = None,
    max_iter: int | None = None,
    allowed: jax.Array | None = None,
) -> jax.Array:
    """argmin_{z ≥ 0} ½ zᵀ Q z + cᵀ z by the Lawson–Hanson active-set method (see module doc).

    Args:
      quad: (T, T) symmetric PSD matrix Q.
      linear: (T,) vector c; the problem must be bounded below (c ∈ range(Q) suffices).
      init: optional feasible (≥ 0) warm start; its positive entries form the first free set.
      max_iter: cap on active-set steps (each adds or drops one coordinate); 4T + 16 if None.
      allowed: optional (T,) bool; coordinates outside it are fixed at 0.

    Returns:
      (T,) z ≥ 0. If the cap is hit, the last feasible iterate (objective never increases).
      On accelerators with T ≤ ``MAX_ENUMERATED_TASKS``, the exact enumerated solution
      (``init`` and ``max_iter`` are then unused).
    """
    num = quad.shape[0]
    dtype = quad.dtype
    max_iter = 4 * num + 16 if max_iter is None else max_iter
    # Rescale so that max diag Q = 1: same minimiser, scale-free tolerances.
    scale = jnp.max(jnp.abs(jnp.diagonal(quad)))
    scale = jnp.where(scale > 0, scale, 1.0)
    quad = quad / scale
    linear = linear / scale
    allowed = jnp.ones((num,), bool) if allowed is None else allowed
    z0 = jnp.zeros((num,), dtype) if init is None else jnp.maximum(init.astype(dtype), 0.0)
    z0 = jnp.where(allowed, z0, 0.0)

    def active_set(quad, linear, allowed, z0):
        return _active_set_nonnegative_qp(quad, linear, allowed, z0, max_iter)

    if num > MAX_ENUMERATED_TASKS:
        return active_set(quad, linear, allowed, z0)
    # CPUs run the sequential active-set method (a few µs there); accelerators the
    # loop-free enumeration, which avoids a host round-trip per while-loop iteration.
    return by_platform(
        (quad, linear, allowed, z0), cpu=active_set,
        accelerator=lambda quad, linear, allowed, z0: _enumerated_nonnegative_qp(quad, linear, allowed),
    )  # fmt: skip


def _active_set_nonnegative_qp(
    quad: jax.Array, linear: jax.Array, allowed: jax.Array, z0: jax.Array, max_iter: int
) -> jax.Array:
    """The Lawson–Hanson active-set method on a rescaled problem (module doc, ``lax.while_loop``)."""
    add_tol = 32 * _eps(quad.dtype)
    free0 = z0 > 0

    def cond(carry):
        _, _, it, done = carry
        return (~done) & (it < max_iter)

    def body(carry):
        z, free, it, _ = carry
        s = _masked_pinv_solve(quad, -linear, free)
        feasible = jnp.all(jnp.where(free, s > 0, True))

        # (a) s is feasible: accept it, then free the coordinate with the steepest descent.
        descent = -(_matmul(quad, s) + linear)
        size = jnp.max(_matmul(jnp.abs(quad), jnp.abs(s)) + jnp.abs(linear))
        candidates = jnp.where(free | ~allowed, -jnp.inf, descent)
        j = jnp.argmax(candidates)
        add = candidates[j] > add_tol * jnp.maximum(size, 1e-30)
        free_a = free.at[j].set(free[j] | add)

        # (b) s left the orthant: move from z towards s until the first coordinate hits 0.
        gap = z - s
        hits = free & (s <= 0)
        ratio = jnp.where(hits, jnp.where(gap > 0, z / jnp.where(gap > 0, gap, 1.0), 0.0), jnp.inf)
        k = jnp.argmin(ratio)
        step = jnp.clip(ratio[k], 0.0, 1.0)
        z_b = z + step * (s - z)
        free_b = free & (z_b > 0)
        free_b = free_b.at[k].set(False)
        z_b = jnp.where(free_b, z_b, 0.0)

        z_new = jnp.where(feasible, s, z_b)
        free_new = jnp.where(feasible, free_a, free_b)
        done = feasible & ~add
        return z_new, free_new, it + 1, done

    z, _, _, _ = jax.lax.while_loop(cond, body, (z0, free0, jnp.array(0), jnp.array(False)))
    return z


def min_norm_in_hull(
    gramian: jax.Array, init: jax.Array | None = None, allowed: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """w on the simplex minimising wᵀGw (min-norm point of the hull of the g_i), by LDP.

    Returns ``(w, z)``; ``z`` (the unnormalised LDP solution) can warm-start the next call.
    ``allowed`` optionally restricts the hull to a subset of the points (at least one).
    """
    num = gramian.shape[0]
    scale = jnp.max(jnp.abs(jnp.diagonal(gramian)))
    scale = jnp.where(scale > 0, scale, 1.0)
    ones = jnp.ones((num,), gramian.dtype)
    quad = gramian / scale + jnp.outer(ones, ones)
    z = nonnegative_qp(quad, -ones, init=init, allowed=allowed)
    total = jnp.sum(z)
    w = jnp.where(total > 0, z / jnp.where(total > 0, total, 1.0), ones / num)
    return w, z


def shifted_gramian(gramian: jax.Array, inner: jax.Array, sq_norm: jax.Array) -> jax.Array:
    """Gramian of the shifted points g_i + s, given inner_i = ⟨g_i, s⟩ and sq_norm = ‖s‖².

    On the simplex Σ w_i (g_i + s) = g_w + s, so ``min_norm_in_hull`` of this Gramian gives
    argmin_{w ∈ simplex} ‖g_w + s‖² (SDMGrad with s = λ g0, CAGrad's inner problem).
    """
    ones = jnp.ones_like(inner)
    return gramian + jnp.outer(inner, ones) + jnp.outer(ones, inner) + sq_norm * jnp.outer(ones, ones)


def project_onto_dual_cone(gramian: jax.Array, lower: jax.Array) -> jax.Array:
    """v = argmin_{v ≥ u} vᵀGv, so that Jᵀv is the projection of Jᵀu onto {x : Jx ≥ 0}."""
    z = nonnegative_qp(gramian, _matmul(gramian, lower))
    return lower + z


def _neg_utility(w: jax.Array, power: float) -> jax.Array:
    """Σ_i h(w_i) with h'(w) = w^{-power}."""
    if power == 1.0:
        return jnp.sum(jnp.log(w))
    return jnp.sum(w ** (1.0 - power)) / (1.0 - power)


def inverse_power_weights(
    gramian: jax.Array,
    alpha: float = 1.0,
    ridge: float = 1e-6,
    max_iter: int = 100,
    max_backtracks: int = 30,
) -> jax.Array:
    """w > 0 with (G w)_i = w_i^{-1/α} for every task with g_i ≠ 0, and w_i = 0 otherwise.

    Args:
      gramian: (T, T) Gramian.
      alpha: the exponent α > 0 (α = 1: Nash-MTL's G w = 1/w).
      ridge: G is replaced by G + ridge · diag(G) (a relative change of every G_ii by
        ``ridge``, invariant to per-task gradient scales). When 0 lies in the convex hull of
        the g_i (a Pareto-stationary point) the equation has no positive solution (the
        objective is unbounded below along a non-negative null vector of G); the ridge keeps
        the weights finite there (w_i = O(ridge^{-1/2} / ‖g_i‖)). Elsewhere it is a backward
        error of ``ridge`` relative to each row, i.e. it moves w by O(ridge · cond).
      max_iter: Newton steps at most (quadratic convergence; 10–20 are typical).
      max_backtracks: step halvings tried in the Armijo search.

    Tasks whose gradient is exactly zero (G_ii ≤ eps² · max G_ii) cannot satisfy the equation;
    they are decoupled and get weight 0 (they do not change Jᵀw anyway).
    """
    num = gramian.shape[0]
    dtype = gramian.dtype
    power = 1.0 / alpha
    diag = jnp.diagonal(gramian)
    scale = jnp.max(diag)
    scale = jnp.where(scale > 0, scale, 1.0)
    active = diag > _eps(dtype) ** 2 * scale
    both = active[:, None] & active[None, :]
    eye = jnp.eye(num, dtype=dtype)
    quad = jnp.where(both, gramian / scale, 0.0)
    quad = quad + jnp.where(active, ridge * jnp.diagonal(quad), 1.0) * eye
    tol = 64 * _eps(dtype)

    def objective(w):
        return 0.5 * w @ _matmul(quad, w) - _neg_utility(w, power)

    def residual(w):
        return jnp.max(jnp.abs(_matmul(quad, w) * w**power - 1.0))

    # Start from the solution of the diagonal problem: Q_ii w_i = w_i^{-p}.
    w0 = jnp.diagonal(quad) ** (-1.0 / (1.0 + power))
    lengths = 0.5 ** jnp.arange(max_backtracks, dtype=dtype)

    def cond(carry):
        w, it, res = carry
        return (it < max_iter) & (res > tol)

    def body(carry):
        w, it, _ = carry
        grad = _matmul(quad, w) - w ** (-power)
        hess = quad + jnp.diag(power * w ** (-power - 1.0))
        direction = jnp.linalg.solve(hess, grad)  # step is w - t·direction
        # Fraction to the boundary: keep w - t·direction > 0 with margin.
        limits = jnp.where(direction > 0, w / jnp.where(direction > 0, direction, 1.0), jnp.inf)
        t_max = jnp.minimum(1.0, 0.99 * jnp.min(limits))
        trials = t_max * lengths
        candidates = w[None, :] - trials[:, None] * direction[None, :]
        values = jax.vmap(objective)(candidates)
        slope = grad @ direction
        accept = (values <= objective(w) - 1e-4 * trials * slope) & jnp.all(candidates > 0, axis=1)
        # Close to the solution (Newton decrement² = slope < 1/16) take the full step: float32
        # objective values can no longer resolve the Armijo decrease there.
        accept = accept.at[0].set(accept[0] | ((slope < 1.0 / 16) & jnp.all(candidates[0] > 0)))
        first = jnp.argmax(accept)
        w_new = jnp.where(jnp.any(accept), candidates[first], w)
        return w_new, it + 1, residual(w_new)

    w, _, _ = jax.lax.while_loop(cond, body, (w0, jnp.array(0), residual(w0)))
    # Undo the scaling: (s·Ĝ) w = w^{-p} is solved by w = s^{-1/(1+p)} ŵ.
    w = w * scale ** (-1.0 / (1.0 + power))
    return jnp.where(active, w, 0.0)

"""Float64 NumPy/SciPy references for the optimisation-based aggregators, written from the
papers' equations (KKT enumeration for the QPs, SciPy solvers for the rest), plus the shared
test cases (fresh random Jacobians, including the degenerate ones) and a jitted runner."""

from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from mtl_jax.aggregators.kinds import Aggregator, WeightingInputs
from tests.aggregators.jacobians import (
    aligned_jacobian,
    conflicting_jacobian,
    random_jacobian,
    with_parallel_rows,
    with_zero_row,
)

GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "random": random_jacobian,
    "conflicting": conflicting_jacobian,
    "aligned": aligned_jacobian,
    "zero_row": with_zero_row,
    "parallel": with_parallel_rows,
}

# (generator name, T): every generator for T in {1, 2, 3, 5, 8}, except the ones that are
# all-zero or ill-defined for T = 1 (conflicting, zero_row and parallel need T ≥ 2).
CASES = [
    (name, t)
    for name in GENERATORS
    for t in (1, 2, 3, 5, 8)
    if t >= 2 or name in ("random", "aligned")
]
CASE_IDS = [f"{name}-T{t}" for name, t in CASES]


def make_jacobian(rng: np.random.Generator, name: str, num_tasks: int) -> np.ndarray:
    jac = GENERATORS[name](rng, num_tasks)
    assert np.any(jac != 0)
    return jac


def run_jitted(aggregator: Aggregator, gram64: np.ndarray) -> np.ndarray:
    """Run ``aggregator.weigh`` under jit on the float32 Gramian; weights as float64."""
    num_tasks = gram64.shape[0]
    # Keyed by the weigh function's identity: tests keep one aggregator per module, so each
    # (method, T) pair compiles once.
    key = id(aggregator.weigh)
    if key not in _JIT_CACHE:
        _JIT_CACHE[key] = (aggregator.weigh, jax.jit(aggregator.weigh))
    weigh = _JIT_CACHE[key][1]
    inputs = WeightingInputs(
        gramian=jnp.asarray(gram64, jnp.float32),
        losses=jnp.ones((num_tasks,), jnp.float32),
        key=jax.random.key(0),
        step=jnp.asarray(0),
    )
    weights, _ = weigh(inputs, aggregator.init(num_tasks))
    weights = np.asarray(weights, np.float64)
    assert weights.shape == (num_tasks,)
    assert np.all(np.isfinite(weights))
    return weights


_JIT_CACHE: dict[int, tuple[Callable, Callable]] = {}


def scale_of(jac: np.ndarray) -> float:
    """The largest task-gradient norm: the scale errors in d = Jᵀw are measured against."""
    return float(np.max(np.linalg.norm(jac, axis=1)))


# --------------------------------------------------------------------------- QP references


def assert_in_dual_cone(jac: np.ndarray, weights: np.ndarray, tol: float = 1e-5) -> None:
    """The aggregate never conflicts with a task, ⟨Jᵀw, g_i⟩ ≥ 0, and w ≥ 1/T (UPGrad, DualProj)."""
    num_tasks = jac.shape[0]
    assert np.all(jac @ (jac.T @ weights) >= -tol * scale_of(jac) ** 2)
    assert np.all(weights >= 1.0 / num_tasks - 1e-6)


def simplex_qp(gram: np.ndarray, linear: np.ndarray | None = None) -> np.ndarray:
    """argmin_{w ∈ simplex} ½ wᵀGw + cᵀw by enumerating supports and checking the KKT system

        (Gw + c)_i = λ on the support, ≥ λ elsewhere, Σ w = 1, w ≥ 0.
    """
    num = gram.shape[0]
    linear = np.zeros(num) if linear is None else linear
    size = np.abs(gram).max() + np.abs(linear).max() + 1e-300
    best, best_val = None, np.inf
    for k in range(1, num + 1):
        for support in itertools.combinations(range(num), k):
            s = list(support)
            system = np.zeros((k + 1, k + 1))
            system[:k, :k] = gram[np.ix_(s, s)]
            system[:k, k] = -1.0
            system[k, :k] = 1.0
            rhs = np.concatenate([-linear[s], [1.0]])
            sol = np.linalg.lstsq(system, rhs, rcond=None)[0]
            w = np.zeros(num)
            w[s] = sol[:k]
            lam = sol[k]
            slack = gram @ w + linear - lam
            if (
                np.all(w >= -1e-12)
                and abs(w.sum() - 1) < 1e-9
                and np.all(np.abs(slack[s]) <= 1e-9 * size)
                and np.all(slack >= -1e-9 * size)
            ):
                val = 0.5 * w @ gram @ w + linear @ w
                if val < best_val - 1e-12 * size:
                    best, best_val = np.maximum(w, 0), val
    assert best is not None
    return best


def lower_bounded_qp(gram: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """argmin_{v ≥ u} vᵀGv by enumerating the free set: (Gv)_F = 0, v_F ≥ u_F, (Gv)_i ≥ 0."""
    num = gram.shape[0]
    size = np.abs(gram).max() * max(1.0, np.abs(lower).max()) + 1e-300
    best, best_val = None, np.inf
    for k in range(0, num + 1):
        for free in itertools.combinations(range(num), k):
            f = list(free)
            v = lower.astype(np.float64).copy()
            if k:
                rhs = -(gram[f] @ lower)
                v[f] += np.linalg.lstsq(gram[np.ix_(f, f)], rhs, rcond=None)[0]
            grad = gram @ v
            if (
                np.all(v - lower >= -1e-12)
                and np.all(np.abs(grad[f]) <= 1e-9 * size * max(1.0, np.abs(v).max()))
                and np.all(grad >= -1e-9 * size * max(1.0, np.abs(v).max()))
            ):
                val = v @ gram @ v
                if val < best_val - 1e-12 * size:
                    best, best_val = v, val
    assert best is not None
    return best


def inverse_power_reference(gram: np.ndarray, alpha: float) -> np.ndarray:
    """Positive root of G w = w^{-1/α} on the tasks with g_i ≠ 0 (0 elsewhere).

    G w = w^{-1/α} is the stationarity condition of f(w) = ½ wᵀGw − Σ h(w_i), h' = w^{-1/α};
    f∘exp is minimised over u = log w by SciPy's exact-Hessian trust region, then the root
    is polished by SciPy's hybrid Powell method.
    """
    active = np.diag(gram) > 0
    sub = gram[np.ix_(active, active)]
    p = 1.0 / alpha

    def h(w):
        return np.log(w) if p == 1.0 else w ** (1 - p) / (1 - p)

    def fun(u):
        w = np.exp(u)
        return 0.5 * w @ sub @ w - np.sum(h(w))

    def jac(u):
        w = np.exp(u)
        return w * (sub @ w - w**-p)

    def hess(u):
        w = np.exp(u)
        hw = sub + np.diag(p * w ** (-p - 1))
        return w[:, None] * hw * w[None, :] + np.diag(w * (sub @ w - w**-p))

    def residual(u):
        w = np.exp(u)
        return sub @ w * w**p - 1.0

    start = np.log(np.diag(sub) ** (-1 / (1 + p)))
    res = scipy.optimize.minimize(
        fun, start, jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-12}
    )
    u = scipy.optimize.root(residual, res.x, method="hybr", tol=1e-15).x
    assert np.max(np.abs(residual(u))) < 1e-9, res.message
    w = np.zeros(gram.shape[0])
    w[active] = np.exp(u)
    return w


def cagrad_dual_reference(jac: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """CAGrad's dual, min over the simplex of F(w) = ⟨g_w, g0⟩ + c‖g0‖‖g_w‖, by SLSQP from
    several starts, over the tasks with a non-zero gradient (g0 is the mean over all tasks).

    Returns (F*, d*): F* of the full problem (min(0, F* of the rest) when a task has a zero
    gradient, since F(e_i) = 0 then) and d* = g0 + c‖g0‖ g_w/‖g_w‖ from the restricted dual.
    """
    g0 = jac.mean(axis=0)
    nonzero = np.any(jac != 0, axis=1)
    rows = jac[nonzero]
    num = rows.shape[0]
    gram = rows @ rows.T
    b = rows @ g0
    kappa = c * np.linalg.norm(g0)

    def objective(w):
        return b @ w + kappa * np.sqrt(max(w @ gram @ w, 0.0) + 1e-300)

    best = None
    mean = np.full(num, 1.0 / num)
    starts = [mean] + [np.eye(num)[i] * 0.9 + 0.1 / num for i in range(num)]
    for x0 in starts:
        res = scipy.optimize.minimize(
            objective,
            x0,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * num,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
    gw = rows.T @ np.clip(best.x, 0, None)
    d = g0 + kappa * gw / np.linalg.norm(gw)
    f_star = float(best.fun) if nonzero.all() else min(0.0, float(best.fun))
    return f_star, d

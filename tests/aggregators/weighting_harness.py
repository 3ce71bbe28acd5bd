"""Shared harness for the Gramian-weighting tests: run an aggregator the way the step does.

Two runs per method:
- float64 (``jax.enable_x64``): G = J Jᵀ in float64, so the Gramian reformulation can be
  checked against the float64 NumPy reference on J with tight tolerances;
- float32: G from ``mtl_jax.aggregators.gramian`` on the float32 Jacobian, as in the train step;
  tolerances are looser and say why.
Both run the aggregator's ``weigh`` under ``jax.jit``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators import gramian
from mtl_jax.aggregators.kinds import Aggregator, WeightingInputs
from tests.aggregators.jacobians import (
    aligned_jacobian,
    conflicting_jacobian,
    random_jacobian,
    with_parallel_rows,
    with_zero_row,
)

TASK_COUNTS = (1, 2, 3, 5, 8)

# (generator, T): every generator at every T where it is defined and not all zeros
# (the conflicting generator at T=1 and the zero-row one at T=1 are the zero matrix, and
# parallel rows need T >= 2).
CASES = (
    [(random_jacobian, t) for t in TASK_COUNTS]
    + [(aligned_jacobian, t) for t in TASK_COUNTS]
    + [(conflicting_jacobian, t) for t in TASK_COUNTS if t >= 2]
    + [(with_zero_row, t) for t in TASK_COUNTS if t >= 2]
    + [(with_parallel_rows, t) for t in TASK_COUNTS if t >= 2]
)
CASE_IDS = [f"{make.__name__}-T{t}" for make, t in CASES]


@functools.lru_cache(maxsize=None)
def jitted(weigh):
    """One jit wrapper per weigh function, so shapes already seen are not recompiled."""
    return jax.jit(weigh)


def run(
    aggregator: Aggregator,
    jac: np.ndarray,
    *,
    x64: bool,
    state=None,
    key: jax.Array | None = None,
    step: int = 0,
):
    """(weights as float64 NumPy, new state) of ``aggregator.weigh`` on the Jacobian ``jac``."""
    num_tasks = jac.shape[0]
    key = jax.random.key(0) if key is None else key
    if x64:
        with jax.enable_x64(True):
            jac_device = jnp.asarray(jac, jnp.float64)
            gram = jnp.matmul(jac_device, jac_device.T, precision=jax.lax.Precision.HIGHEST)
            state = aggregator.init(num_tasks) if state is None else state
            state = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), state)
            inputs = WeightingInputs(gram, jnp.ones(num_tasks, jnp.float64), key, jnp.asarray(step))
            weights, new_state = jitted(aggregator.weigh)(inputs, state)
            return np.asarray(weights, np.float64), jax.tree.map(np.asarray, new_state)
    gram = gramian(jnp.asarray(jac, jnp.float32))
    state = aggregator.init(num_tasks) if state is None else state
    state = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), state)
    inputs = WeightingInputs(gram, jnp.ones(num_tasks, jnp.float32), key, jnp.asarray(step))
    weights, new_state = jitted(aggregator.weigh)(inputs, state)
    return np.asarray(weights, np.float64), jax.tree.map(np.asarray, new_state)


def assert_update_close(d: np.ndarray, d_ref: np.ndarray, jac: np.ndarray, rtol: float) -> None:
    """‖d − d_ref‖ ≤ rtol·(‖d_ref‖ + max_t ‖g_t‖).

    The gradient scale in the bound covers references that are (near) zero, e.g. IMTL-G and
    ConFIG on fully conflicting gradients, where only an absolute error is meaningful.
    """
    error = np.linalg.norm(d - d_ref)
    bound = rtol * (np.linalg.norm(d_ref) + np.linalg.norm(jac, axis=1).max())
    assert error <= bound, f"‖d − d_ref‖ = {error:.3e} > {bound:.3e} (‖d_ref‖ = {np.linalg.norm(d_ref):.3e})"


def condition_number(jac: np.ndarray, rtol: float = 1e-5) -> float:
    """λ_max / λ_min of J Jᵀ over the eigenvalues above rtol·λ_max (the numerical rank)."""
    eigenvalues = np.linalg.svd(jac, compute_uv=False) ** 2
    kept = eigenvalues[eigenvalues > rtol * eigenvalues.max()]
    return float(kept.max() / kept.min())

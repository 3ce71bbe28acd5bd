"""The accelerator path of the QP-based methods (loop-free support enumeration, CAGrad's
closed form) gives the weights of the CPU path (active set, bisection), which the reference
tests check against float64 NumPy/SciPy — on fresh random and degenerate Jacobians."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators import get_aggregator
from mtl_jax.aggregators.kinds import WeightingInputs
from mtl_jax.aggregators.qp import force_solver
from tests.aggregators.jacobians import (
    aligned_jacobian,
    conflicting_jacobian,
    random_jacobian,
    with_parallel_rows,
    with_zero_row,
)

METHODS = ("mgda", "upgrad", "dualproj", "cagrad", "sdmgrad", "cr_mogm")
JACOBIANS = {
    "random": random_jacobian,
    "conflicting": conflicting_jacobian,
    "aligned": aligned_jacobian,
    "zero_row": with_zero_row,
    "parallel": with_parallel_rows,
}


@functools.lru_cache(maxsize=None)
def solver(kind: str, name: str):
    """(aggregator, its weighting jitted for one solver kind). One function per (kind, name):
    jit traces it on its first call, inside ``force_solver(kind)``, and every later call of
    the same shapes (and x64 mode) reuses that trace, so each (kind, name, T) compiles once
    for all the Jacobians."""
    aggregator = get_aggregator(name)
    return aggregator, jax.jit(lambda i, s: aggregator.weigh(i, s))


def weights_with(kind: str, name: str, gramian: np.ndarray) -> np.ndarray:
    aggregator, weigh = solver(kind, name)
    num_tasks = gramian.shape[0]
    inputs = WeightingInputs(jnp.asarray(gramian), jnp.ones((num_tasks,), gramian.dtype), jax.random.key(0), jnp.asarray(0))
    with force_solver(kind):  # the first call of this function traces it with this solver
        weights, _ = weigh(inputs, aggregator.init(num_tasks))
    return np.asarray(weights, np.float64)


@pytest.mark.parametrize("num_tasks", [3, 8])
@pytest.mark.parametrize("jacobian", sorted(JACOBIANS))
@pytest.mark.parametrize("name", METHODS)
def test_accelerator_path_matches_cpu_path(rng, name, jacobian, num_tasks):
    jac = JACOBIANS[jacobian](rng, num_tasks)
    with jax.enable_x64(True):
        gramian = jac @ jac.T
        cpu = weights_with("cpu", name, gramian)
        accelerator = weights_with("accelerator", name, gramian)
    direction_cpu, direction_acc = cpu @ jac, accelerator @ jac
    scale = np.abs(jac).max() * max(1.0, np.abs(cpu).max())
    np.testing.assert_allclose(direction_acc, direction_cpu, atol=1e-6 * scale, rtol=1e-6)

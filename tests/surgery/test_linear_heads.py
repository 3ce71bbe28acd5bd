"""Representation mode with dense heads (mtl_jax.surgery.linear_heads): G from the heads'
output gradients equals the Gramian of the rows ∂L_t/∂z, and the step equals the rows path."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.models import MLPTrunk, build_model, classification_task
from mtl_jax.models.multitask import TaskModule, assemble_model
from mtl_jax.surgery.linear_heads import gramian_of_linear_heads
from tests.helpers import flat_params, random_batch, run_steps, small_model


def _rows_gramian(deltas: list[np.ndarray], kernels: list[np.ndarray]) -> np.ndarray:
    """NumPy float64: r_t = Δ_t W_tᵀ over every row of z, G = R Rᵀ."""
    rows = np.stack([(d.reshape(-1, d.shape[-1]) @ w.T).ravel() for d, w in zip(deltas, kernels)])
    return rows @ rows.T


@pytest.mark.parametrize("leading", [(7,), (3, 5)], ids=["examples", "examples-x-positions"])
def test_gramian_equals_the_rows_gramian(rng, leading):
    widths, features = [2, 5, 1, 3], 6
    deltas = [rng.standard_normal((*leading, c)) for c in widths]
    deltas[2][:] = 0.0  # a task with no examples in the batch: a zero row and column
    kernels = [rng.standard_normal((features, c)) for c in widths]
    with jax.enable_x64(True):
        got = np.asarray(gramian_of_linear_heads(deltas, kernels, axis_name=None))
    expected = _rows_gramian(deltas, kernels)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert np.all(got[2] == 0) and np.all(got[:, 2] == 0)


def test_gramian_of_parallel_heads_is_rank_one(rng):
    """Degenerate: every head has the same kernel and the same output gradient."""
    delta, kernel = rng.standard_normal((9, 4)), rng.standard_normal((5, 4))
    with jax.enable_x64(True):
        got = np.asarray(gramian_of_linear_heads([delta] * 3, [kernel] * 3, axis_name=None))
    np.testing.assert_allclose(got, np.full((3, 3), got[0, 0]), rtol=1e-12)
    assert np.linalg.matrix_rank(got, tol=1e-9 * got[0, 0]) == 1


@pytest.mark.parametrize("method", ["pcgrad", "upgrad", "mgda"])
def test_step_equals_the_rows_path(rng, method):
    model, params = small_model(4)
    assert model.linear_heads
    batches = [random_batch(rng, 16, 4) for _ in range(2)]
    results = {
        linear: run_steps(model._replace(linear_heads=linear), params, batches, get_aggregator(method),
                          "representation", optax.sgd(0.1), gradient_stats=True)
        for linear in (True, False)
    }
    (fast, fast_metrics), (rows, rows_metrics) = results[True], results[False]
    got, expected = flat_params(fast.params), flat_params(rows.params)
    difference = sum(np.sum((got[k].astype(np.float64) - expected[k]) ** 2) for k in expected)
    start = flat_params(params)
    moved = sum(np.sum((expected[k].astype(np.float64) - start[k]) ** 2) for k in expected)
    assert moved > 0 and difference <= 1e-12 * moved, (difference, moved)
    for key in ("weights", "grad_norm", "grad_cosine"):
        np.testing.assert_allclose(fast_metrics[-1][key], rows_metrics[-1][key], rtol=1e-5, atol=1e-6)


class _ScaledHead(TaskModule):
    def __init__(self, rngs):
        self.dense = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, z, batch, *, rngs=None):
        return 2.0 * self.dense(z)


class _Dense(nnx.Linear):
    pass


def test_only_plain_dense_heads_take_the_path():
    rngs = nnx.Rngs(0)
    tasks = [classification_task("a", 3), classification_task("b", 3)]
    trunk = MLPTrunk(5, (4,), input_key="x", rngs=rngs)
    assert build_model(trunk, 4, tasks, rngs)[0].linear_heads
    for other in (_ScaledHead(rngs), _Dense(4, 3, rngs=rngs), nnx.Linear(4, 3, dot_general=lambda *a, **k: jax.lax.dot_general(*a, **k), rngs=rngs)):
        model, _ = assemble_model(trunk, {"a": nnx.Linear(4, 3, rngs=rngs), "b": other}, tasks)
        assert not model.linear_heads, type(other)

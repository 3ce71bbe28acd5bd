"""Property-based tests (hypothesis): invariants that must hold for every input, not only
for the seeded draws of the reference tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.pcgrad import pcgrad_weights
from mtl_jax.data import bucketing, pipeline

FINITE = st.floats(-10.0, 10.0, allow_nan=False, allow_subnormal=False, width=32)
# Jitted once, as the step runs them: eagerly, PCGrad's scan is traced and compiled anew on
# every example (its body closes over fresh arrays): 11 s of CPU for 60 examples, 0.5 s jitted.
jit_gramian, jit_pcgrad_weights, jit_weighted_sum = map(jax.jit, (gramian, pcgrad_weights, weighted_sum))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (2, 7), elements=FINITE))
def test_pcgrad_two_tasks_never_increases_either_loss_to_first_order(jacobian: np.ndarray) -> None:
    """Yu et al. 2020, T=2: g_1^PC ⊥ g_2 and g_2^PC ⊥ g_1 on conflict, so the update
    d = g_1^PC + g_2^PC has d·g_j = ‖g_j^PC‖²-like terms ≥ 0 for both tasks; without
    conflict d = g_1 + g_2."""
    orders = np.array([[0, 1], [1, 0]], np.int32)  # with T=2 every order visits the other task
    gram = np.asarray(jit_gramian(jacobian))
    weights = np.asarray(jit_pcgrad_weights(jnp.asarray(gram), jnp.asarray(orders)), np.float64)
    rows = jacobian.astype(np.float64)
    direction = weights @ rows
    tolerance = 1e-4 * (1.0 + np.abs(rows @ rows.T).max())
    assert (direction @ rows.T >= -tolerance).all()
    if rows[0] @ rows[1] >= tolerance:
        np.testing.assert_allclose(weights, [1.0, 1.0], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (4, 5), elements=FINITE), arrays(np.float32, (4,), elements=FINITE))
def test_gramian_is_symmetric_psd_and_weighted_sum_is_linear(jacobian: np.ndarray, weights: np.ndarray) -> None:
    tree = {"a": jacobian[:, :3], "b": jacobian[:, 3:].reshape(4, 2, 1)}
    gram = np.asarray(jit_gramian(tree), np.float64)
    exact = jacobian.astype(np.float64) @ jacobian.astype(np.float64).T
    np.testing.assert_allclose(gram, exact, rtol=1e-5, atol=1e-3)
    assert np.linalg.eigvalsh((gram + gram.T) / 2).min() >= -1e-3 * (1 + np.abs(exact).max())
    direction = jit_weighted_sum(weights, tree)
    flat = np.concatenate([np.asarray(direction["a"]).ravel(), np.asarray(direction["b"]).ravel()])
    np.testing.assert_allclose(flat, weights.astype(np.float64) @ jacobian.astype(np.float64), rtol=1e-4, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 600))
def test_bucket_length_fits_and_at_most_doubles(length: int) -> None:
    buckets = bucketing.default_buckets(600)
    padded = bucketing.bucket_length(length, buckets)
    assert padded in buckets and padded >= length
    assert padded <= max(2 * length, buckets[0])


@settings(max_examples=15, deadline=None)
@given(st.integers(16, 60), st.sampled_from([1, 2, 4]), st.integers(0, 2**16), st.integers(0, 9))
def test_process_slices_concatenate_to_the_global_batch(size: int, processes: int, seed: int, step: int) -> None:
    source = [{"x": np.int32(i)} for i in range(size)]
    batch = 4 * processes
    whole = pipeline.train_batches(source, batch, seed, process_index=0, process_count=1)
    parts = [pipeline.train_batches(source, batch, seed, process_index=p, process_count=processes) for p in range(processes)]
    for iterator in (whole, *parts):
        iterator.set_state({**iterator.get_state(), "step": step})
    expected = next(whole)["x"]
    np.testing.assert_array_equal(np.concatenate([next(part)["x"] for part in parts]), expected)
    assert len(set(expected.tolist())) == batch  # no example twice in a global batch

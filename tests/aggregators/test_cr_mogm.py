"""CR-MOGM: the exponential average λ_k = α λ_{k−1} + (1 − α) λ̂_k of MGDA's min-norm weights,
over several steps, against a float64 NumPy reference that finds the min-norm point of the
hull of the explicit gradients by enumerating faces."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.cr_mogm import DEFAULT_ALPHA, cr_mogm
from tests.aggregators.jacobians import with_parallel_rows, with_zero_row
from tests.aggregators.weighting_harness import CASE_IDS, CASES, assert_update_close, run

ALPHA = 0.7
AGGREGATOR = cr_mogm(ALPHA)
INSTANT = cr_mogm(0.0)  # α = 0: the solver's λ̂ itself
NUM_STEPS = 3


def reference_min_norm(jac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(λ̂, Jᵀλ̂): for every face S, project 0 onto the affine hull of {g_s}; keep the shortest
    projection whose barycentric coordinates are ≥ 0 (the min-norm point lies on such a face)."""
    num_tasks = len(jac)
    best = (np.inf, None)
    for size in range(1, num_tasks + 1):
        for face in itertools.combinations(range(num_tasks), size):
            base, others = jac[face[0]], jac[list(face[1:])]
            if size > 1:
                coef = np.linalg.lstsq((others - base).T, -base, rcond=None)[0]
                lam_face = np.concatenate([[1.0 - coef.sum()], coef])
            else:
                lam_face = np.ones(1)
            if np.any(lam_face < -1e-10):
                continue
            point = lam_face @ jac[list(face)]
            if point @ point < best[0] - 1e-14:
                lam = np.zeros(num_tasks)
                lam[list(face)] = lam_face
                best = (point @ point, lam)
    lam = best[1]
    return lam, lam @ jac


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
def test_state_evolution_matches_reference(rng, make, num_tasks):
    unique = make not in (with_zero_row, with_parallel_rows)  # λ̂ unique iff the face is
    previous = np.full(num_tasks, 1.0 / num_tasks)
    state32 = None
    for _ in range(NUM_STEPS):
        jac = make(rng, num_tasks)
        lam_ref, point_ref = reference_min_norm(jac)
        instant, _ = run(INSTANT, jac, x64=False)
        # the solver's min-norm point; float32 G limits it to ~1e-5 of the gradient scale
        assert_update_close(instant @ jac, point_ref, jac, 1e-4)
        np.testing.assert_allclose(instant.sum(), 1.0, atol=1e-5)
        assert np.all(instant >= -1e-6)
        if unique:
            np.testing.assert_allclose(instant, lam_ref, atol=5e-4)
        else:  # any λ̂ with the same point is a valid MGDA answer: average the solver's
            lam_ref = instant
        expected = ALPHA * previous + (1 - ALPHA) * lam_ref
        weights, state32 = run(AGGREGATOR, jac, x64=False, state=state32)
        np.testing.assert_allclose(weights, expected, atol=5e-4)
        np.testing.assert_allclose(state32.weights, weights, atol=1e-7)
        assert_update_close(weights @ jac, expected @ jac, jac, 1e-3)
        previous = expected


def test_injected_solver_and_defaults():
    """The EMA exactly, with a stand-in solver; the initial state is the simplex centre."""
    solver = lambda gram: jnp.diagonal(gram) / jnp.sum(jnp.diagonal(gram))  # noqa: E731
    aggregator = cr_mogm(0.5, solver=solver)
    jac = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    weights, state = run(aggregator, jac, x64=True)
    # the initial state 1/T is stored in float32, like the train state
    np.testing.assert_allclose(weights, 0.5 / 3 + 0.5 * np.array([1, 9, 2]) / 12, rtol=1e-7)
    weights2, _ = run(aggregator, jac, x64=True, state=state)
    np.testing.assert_allclose(weights2, 0.5 * weights + 0.5 * np.array([1, 9, 2]) / 12, rtol=1e-12)
    assert DEFAULT_ALPHA == 0.9
    with pytest.raises(ValueError):
        cr_mogm(1.0)

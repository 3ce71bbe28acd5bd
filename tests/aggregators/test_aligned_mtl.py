"""Aligned-MTL against a float64 NumPy transcription of Senushkin et al. 2023, Algorithm 1.

The reference uses the SVD of the explicit Jᵀ = U S Vᵀ: the aligned system is
Jᵀ B = σ_min U Vᵀ (rank-R parts), so it checks the eigen-decomposition of G independently.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mtl_jax.aggregators.aligned_mtl import aligned_mtl, balance_transformation
from mtl_jax.aggregators.psd import DEFAULT_RTOL
from tests.aggregators.weighting_harness import CASE_IDS, CASES, assert_update_close, condition_number, run

AGGREGATOR = aligned_mtl()


def reference_aligned_mtl(jac: np.ndarray, preferences: np.ndarray) -> np.ndarray:
    """d = σ_R U_R V_Rᵀ w from the SVD of Jᵀ, keeping σ² > rtol·σ_max² (rank R)."""
    left, singular, right_t = np.linalg.svd(jac.T, full_matrices=False)
    keep = singular**2 > DEFAULT_RTOL * singular.max() ** 2
    return singular[keep].min() * left[:, keep] @ right_t[keep] @ preferences


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, make, num_tasks):
    jac = make(rng, num_tasks)
    expected = reference_aligned_mtl(jac, np.full(num_tasks, 1.0 / num_tasks))
    w64, _ = run(AGGREGATOR, jac, x64=True)
    assert_update_close(w64 @ jac, expected, jac, 1e-8)
    # float32: the weights divide by √λ_k; an eigen-pair of G in float32 is off by about
    # eps·λ_max/λ_k, so the error grows with the condition number of G (up to ~1e3 here).
    w32, _ = run(AGGREGATOR, jac, x64=False)
    assert_update_close(w32 @ jac, expected, jac, max(1e-4, 2e-6 * condition_number(jac)))


def test_aligned_system_has_equal_singular_values(rng):
    """Jᵀ B has all singular values σ_min (condition number 1), the point of the method."""
    jac = rng.standard_normal((5, 40)) * np.exp(rng.uniform(-1, 1, (5, 1)))
    with jax.enable_x64(True):
        b = np.asarray(jax.jit(balance_transformation)(jac @ jac.T))
    singular = np.linalg.svd(jac.T @ b, compute_uv=False)
    np.testing.assert_allclose(singular, np.linalg.svd(jac, compute_uv=False).min(), rtol=1e-9)


def test_preferences(rng):
    jac = rng.standard_normal((3, 20))
    prefs = np.array([0.5, 0.3, 0.2])
    w, _ = run(aligned_mtl(preferences=prefs), jac, x64=True)
    assert_update_close(w @ jac, reference_aligned_mtl(jac, prefs), jac, 1e-9)


def test_preferences_length_is_checked():
    with pytest.raises(ValueError, match="2 preferences for 3 tasks"):
        aligned_mtl(preferences=[1.0, 2.0]).init(3)

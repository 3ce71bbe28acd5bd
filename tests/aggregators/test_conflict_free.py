"""ConFIG against a float64 NumPy transcription of Liu et al. 2024 (g_u = U(Â⁺1),
g_ConFIG = (Σ g_iᵀ g_u) g_u) with the pseudo-inverse of the explicit T×P unit-vector matrix."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.conflict_free import UNREACHABLE, config
from mtl_jax.aggregators.imtl_g import imtl_g
from mtl_jax.aggregators.psd import DEFAULT_RTOL
from tests.aggregators.weighting_harness import CASE_IDS, CASES, assert_update_close, condition_number, run

AGGREGATOR = config()


def reference_config(jac: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(jac, axis=1)
    units = jac[norms > 0] / norms[norms > 0, None]  # Â; a zero gradient has no unit vector
    # the implementation drops eigenvalues of ÂÂᵀ below rtol·λ_max: singular values below √rtol
    pinv = np.linalg.pinv(units, rcond=np.sqrt(DEFAULT_RTOL))
    ones = np.ones(len(units))
    if np.sum((units @ (pinv @ ones)) ** 2) <= UNREACHABLE * len(units):
        return np.zeros(jac.shape[1])  # 1 ⟂ range(Â): no direction projects positively on all
    direction = pinv @ ones
    unit_direction = direction / np.linalg.norm(direction)
    return (jac.sum(axis=0) @ unit_direction) * unit_direction


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, make, num_tasks):
    jac = make(rng, num_tasks)
    expected = reference_config(jac)
    w64, _ = run(AGGREGATOR, jac, x64=True)
    assert_update_close(w64 @ jac, expected, jac, 1e-9)
    # float32: C⁺ divides by the eigenvalues of the cosine matrix; float32 rounding of G is
    # amplified by its condition number (aligned gradients: ~1e3).
    w32, _ = run(AGGREGATOR, jac, x64=False)
    assert_update_close(w32 @ jac, expected, jac, max(1e-4, 2e-6 * condition_number(jac)))


def test_conflict_free_properties(rng):
    """Equal positive projections on every unit gradient; same direction as IMTL-G."""
    jac = rng.standard_normal((4, 30)) * np.exp(rng.uniform(-1, 1, (4, 1)))
    w, _ = run(AGGREGATOR, jac, x64=True)
    update = w @ jac
    projections = jac @ update / np.linalg.norm(jac, axis=1)
    np.testing.assert_allclose(projections, projections[0], rtol=1e-9)
    w_imtl, _ = run(imtl_g(), jac, x64=True)
    direction = w_imtl @ jac
    np.testing.assert_allclose(
        update / np.linalg.norm(update), np.sign(projections[0]) * direction / np.linalg.norm(direction),
        atol=1e-9,
    )


def test_single_task_is_identity(rng):
    jac = rng.standard_normal((1, 20)) * 3.0
    w, _ = run(AGGREGATOR, jac, x64=False)
    np.testing.assert_allclose(w, [1.0], rtol=1e-6)

"""Krum / Multi-Krum against a float64 NumPy transcription of Blanchard et al. 2017, Sec. 4,
with distances computed on the explicit gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.kinds import WeightingInputs
from mtl_jax.aggregators.krum import krum
from tests.aggregators.weighting_harness import CASE_IDS, CASES, run

SETTINGS = [(0, 1), (1, 1), (1, 2), (0, 3), (2, 2)]  # (f, m)
AGGREGATORS = {setting: krum(*setting) for setting in SETTINGS}
GAP = 1e-4  # relative score gap below which float32 may legitimately pick another task


def reference_scores(jac: np.ndarray, f: int) -> np.ndarray:
    """s(i) = Σ of the n − f − 2 smallest ‖g_i − g_j‖², j ≠ i."""
    n = len(jac)
    scores = []
    for i in range(n):
        distances = sorted(np.sum((jac[i] - jac[j]) ** 2) for j in range(n) if j != i)
        scores.append(sum(distances[: n - f - 2]))
    return np.array(scores)


def check_selection(weights: np.ndarray, jac: np.ndarray, f: int, m: int) -> None:
    scores = reference_scores(jac, f)
    order = np.argsort(scores, kind="stable")
    expected = np.zeros(len(jac))
    expected[order[:m]] = 1.0 / m
    nonzero = np.flatnonzero(weights)
    assert len(nonzero) == m and np.allclose(weights[nonzero], 1.0 / m)
    threshold = scores[order[m - 1]]
    if m < len(jac) and scores[order[m]] - threshold <= GAP * (abs(threshold) + 1e-30):
        # near-tie at the cut: accept any selection whose scores are within the gap
        assert np.all(scores[nonzero] <= threshold * (1 + GAP) + 1e-12)
    else:
        np.testing.assert_allclose(weights, expected, atol=1e-7)
        np.testing.assert_allclose(weights @ jac, jac[order[:m]].mean(axis=0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("make", "num_tasks"), CASES, ids=CASE_IDS)
def test_matches_reference(rng, make, num_tasks):
    jac = make(rng, num_tasks)
    checked = 0
    for (f, m), aggregator in AGGREGATORS.items():
        if num_tasks <= 2 * f + 2 or m > num_tasks:
            with pytest.raises(ValueError):
                aggregator.init(num_tasks)
            continue
        for x64 in (True, False):
            weights, _ = run(aggregator, jac, x64=x64)
            check_selection(weights, jac, f, m)
        checked += 1
    assert checked > 0 or num_tasks < 3


def test_outlier_is_never_selected(rng):
    jac = rng.standard_normal((7, 20)) * 0.1 + 1.0
    jac[3] = 100.0 * rng.standard_normal(20)
    weights, _ = run(krum(f=1, m=4), jac, x64=False)
    assert weights[3] == 0.0


def test_too_few_tasks_fail_at_build_and_trace_time():
    with pytest.raises(ValueError, match="more than 2f\\+2 = 4 tasks, got 4"):
        krum(f=1).init(4)
    inputs = WeightingInputs(jnp.eye(2), jnp.ones(2), jax.random.key(0), jnp.asarray(0))
    with pytest.raises(ValueError, match="got 2"):
        jax.jit(krum(f=0).weigh)(inputs, ())
    with pytest.raises(ValueError):
        krum(f=-1)
    with pytest.raises(ValueError):
        krum(f=0, m=4).init(3)

"""TrimmedMean: per coordinate, the mean of the T − 2·trim middle values."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.trimmed_mean import trimmed_mean
from tests.aggregators.jacobian_harness import run_combine
from tests.aggregators.jacobians import jacobian_cases, random_jacobian, with_parallel_rows, with_zero_row


def reference(jac: np.ndarray, trim: int) -> np.ndarray:
    """Yin et al. 2018, Definition 2, coordinate by coordinate with explicit loops."""
    num_tasks, dim = jac.shape
    out = np.empty(dim)
    for k in range(dim):
        column = sorted(jac[:, k])
        kept = column[trim : num_tasks - trim]
        out[k] = sum(kept) / len(kept)
    return out


TRIMS = {3: 1, 5: (1, 2), 8: (1, 3), 2: 0, 1: 0, 40: 5}
CASES = [
    (make, num_tasks, trim)
    for make, num_tasks in jacobian_cases([random_jacobian, with_zero_row, with_parallel_rows], TRIMS)
    for trim in (TRIMS[num_tasks] if isinstance(TRIMS[num_tasks], tuple) else (TRIMS[num_tasks],))
]


@pytest.mark.parametrize(("make", "num_tasks", "trim"), CASES)
def test_direction_matches_reference(rng, make, num_tasks, trim):
    jac = make(rng, num_tasks)
    d, weights, _ = run_combine(trimmed_mean(trim), jac)
    np.testing.assert_allclose(d, reference(jac, trim), rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(weights))


def test_an_outlier_task_is_ignored(rng):
    jac = rng.standard_normal((5, 50))
    outlier = jac.copy()
    outlier[2] = 1e6 * np.sign(rng.standard_normal(50))
    d, _, _ = run_combine(trimmed_mean(1), outlier)
    assert np.abs(d).max() < np.abs(jac).max() + 1e-5


def test_too_few_tasks_is_a_clear_error():
    with pytest.raises(ValueError, match="trim=1 needs more than 2 tasks, the model has 2"):
        trimmed_mean(1).init(2, {})
    with pytest.raises(ValueError, match="integer trim"):
        trimmed_mean(-1)

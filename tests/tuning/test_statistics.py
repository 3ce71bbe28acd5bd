"""The compare table's statistics against SciPy (float64) on fresh random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mtl_jax.tuning.statistics import average_ranks, mean_sd, regularized_incomplete_beta, t_cdf, t_interval, t_quantile


def test_t_quantile_and_cdf_match_scipy(rng: np.random.Generator) -> None:
    for df in [1, 2, 3, 4, 7, 29, *rng.uniform(0.5, 60, size=4)]:
        for p in [0.975, 0.5, 0.9, *rng.uniform(0.01, 0.99, size=3)]:
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-9)
        for t in rng.normal(0, 3, size=4):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-10, abs=1e-12)


def test_incomplete_beta_matches_scipy_including_the_ends(rng: np.random.Generator) -> None:
    from scipy import special

    for a, b in rng.uniform(0.2, 20, size=(6, 2)):
        for x in [0.0, 1.0, 1e-9, 1 - 1e-9, *rng.uniform(0, 1, size=4)]:
            assert regularized_incomplete_beta(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-9, abs=1e-12)


def test_mean_sd_and_t_interval_match_numpy_and_scipy(rng: np.random.Generator) -> None:
    for n in (2, 3, 5):
        values = list(rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, 2), size=n))
        mean, sd = mean_sd(values)
        assert mean == pytest.approx(np.mean(values), rel=1e-12)
        assert sd == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        low, high = t_interval(values)
        expected = stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=stats.sem(values))
        assert (low, high) == pytest.approx(expected, rel=1e-9)
    assert mean_sd([1.5]) == (1.5, 0.0) and t_interval([1.5]) is None  # one seed: no interval


def test_average_ranks_match_scipy_with_ties(rng: np.random.Generator) -> None:
    values = list(rng.integers(0, 4, size=9).astype(float))  # ties are likely
    for higher in (True, False):
        signed = [-v for v in values] if higher else values
        assert average_ranks(values, higher) == pytest.approx(list(stats.rankdata(signed)))
    assert math.isclose(sum(average_ranks(values, True)), len(values) * (len(values) + 1) / 2)

"""Shared test set-up: float64 NumPy references need fresh random inputs, never zeros."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from the test's name: fresh per test, reproducible per run."""
    seed = abs(hash(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)

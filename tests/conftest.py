"""Shared test set-up: float64 NumPy references need fresh random inputs, never zeros."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from the test's name: different for every test, the same on
    every run; set MTL_JAX_TEST_SEED to draw another set of inputs (and to reproduce it)."""
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("MTL_JAX_TEST_SEED", "0"))
    return np.random.default_rng(seed)


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Datasets prepared by the tests go to a fresh directory, never the user's cache
    (subprocesses inherit it through MTL_JAX_DATA_DIR)."""
    if "MTL_JAX_DATA_DIR" not in os.environ:
        os.environ["MTL_JAX_DATA_DIR"] = str(tmp_path_factory.mktemp("mtl_jax_data"))

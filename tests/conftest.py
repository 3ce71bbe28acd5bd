"""Shared test set-up: float64 NumPy references need fresh random inputs, never zeros."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest


TEST_XLA_FLAGS = "MTL_JAX_TEST_XLA_FLAGS"
# LLVM's optimisation off, and XLA:CPU's classic elemental emitter instead of its MLIR fusion
# emitters (which build an MLIR context per compile): the same HLO, compiled about 3x faster.
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
_PROBE = "import jax, jax.numpy as jnp; jax.jit(lambda x: x + 1)(jnp.ones(2)).block_until_ready()"


def accepted_xla_flags(flags: tuple[str, ...]) -> list[str]:
    """The flags this jaxlib's XLA accepts (an unknown one aborts the process that reads it):
    one probe process for all of them, one per flag only if that fails."""

    def accepted(candidate: tuple[str, ...]) -> bool:
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(candidate))
        return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=120).returncode == 0

    if accepted(flags):
        return list(flags)
    return [flag for flag in flags if accepted((flag,))]


def pytest_configure(config: pytest.Config) -> None:
    """Compile fast: the suite spends most of its time in XLA's CPU compiler, not running
    programs, so tests compile with ``FAST_COMPILE`` (the programs' HLO is unchanged).
    ``MTL_JAX_TEST_XLA_FLAGS`` holds the flags the suite adds, for the scripts that set
    XLA_FLAGS themselves (simulated devices); set it to ``""`` beforehand to test with XLA's
    defaults. Set up in the controller, so pytest-xdist workers and subprocesses inherit it."""
    if hasattr(config, "workerinput"):
        return
    if TEST_XLA_FLAGS not in os.environ:
        os.environ[TEST_XLA_FLAGS] = " ".join(accepted_xla_flags(FAST_COMPILE))
    flags = os.environ[TEST_XLA_FLAGS]
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), flags]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything imported by collection (JAX, Flax, the package) out of the cyclic
    garbage collector's view, so its full collections during tracing do not rescan it."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules holding a ``slow`` test run first, each module kept whole (its module-scoped
    fixtures are set up once). pytest-xdist's work stealing then ends the run on short tests,
    rather than with one worker idle while the other finishes a 30-second subprocess test."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow") and item.module}
    items.sort(key=lambda item: (item.module.__name__ if item.module else "") not in slow_modules)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from the test's name: different for every test, the same on
    every run; set MTL_JAX_TEST_SEED to draw another set of inputs (and to reproduce it)."""
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("MTL_JAX_TEST_SEED", "0"))
    return np.random.default_rng(seed)


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Datasets prepared by the tests go to a fresh directory, never the user's cache
    (subprocesses inherit it through MTL_JAX_DATA_DIR). One per pytest-xdist worker: tests
    check that a bad input changes nothing in it, which another worker preparing a dataset
    at the same moment would break."""
    if "MTL_JAX_DATA_DIR" not in os.environ:
        os.environ["MTL_JAX_DATA_DIR"] = str(tmp_path_factory.mktemp("mtl_jax_data"))

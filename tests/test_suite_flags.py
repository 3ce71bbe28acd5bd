"""The suite's fast-compile XLA flags (tests/conftest.py): what this jaxlib accepts, and that
the workers and the subprocesses they start see them."""

from __future__ import annotations

import os

from tests.conftest import FAST_COMPILE, TEST_XLA_FLAGS, accepted_xla_flags


def test_an_unknown_flag_is_dropped_and_a_known_one_kept():
    assert accepted_xla_flags(("--xla_backend_optimization_level=0", "--xla_mtl_jax_no_such_flag=1")) == [
        "--xla_backend_optimization_level=0"
    ]


def test_the_workers_compile_with_the_accepted_flags():
    flags = os.environ[TEST_XLA_FLAGS].split()
    assert set(flags) <= set(FAST_COMPILE)
    assert all(flag in os.environ["XLA_FLAGS"].split() for flag in flags)

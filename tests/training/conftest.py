"""Fixtures of the kill-and-resume tests: one fork server and one uninterrupted reference run
per test process (``tests/training/fork_server.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import persistent_jit_cache
from tests.training.fork_server import ForkServer, run_to_end


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    """The fork server, with a persistent compilation cache for every run (the suite's own
    one when it set one up)."""
    server = ForkServer({**os.environ, "JAX_PLATFORMS": "cpu", **persistent_jit_cache(tmp_path_factory.mktemp("jit_cache"))})
    yield server
    server.close()


@pytest.fixture(scope="session")
def reference_run(fork_server: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of the tiny experiment trained to the end without interruption."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_to_end(fork_server, workdir)
    return workdir

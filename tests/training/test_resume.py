"""Real processes: a run killed with SIGKILL (or stopped with SIGTERM) and started again ends
with parameters bit-identical to an uninterrupted run on the CPU.

Each run is its own process, forked from a server that imported mtl_jax once
(``tests/training/fork_server.py``): it receives the real signal and installs its own
handlers; only the interpreter's start-up is shared. The uninterrupted reference run is the
one the fault-injection test compares against (``tests/training/conftest.py``). Real
``python -m mtl_jax.cli.main train`` processes that are stopped and restarted:
``tests/test_multihost.py``."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from mtl_jax.training.checkpoint import Checkpointer
from tests.training.fork_server import STEPS, ForkServer, assert_bit_identical, final_state, output, records, run_to_end

pytestmark = pytest.mark.slow


def last_logged_step(workdir: Path) -> int:
    return max((r["step"] for r in records(workdir)), default=-1)


def start_and_interrupt(server: ForkServer, workdir: Path, sig: int, after_step: int) -> int:
    """Start a run, send ``sig`` once it has logged ``after_step``; its exit code."""
    pid = server.start(workdir)
    try:
        deadline = time.monotonic() + 120
        while last_logged_step(workdir) < after_step:
            assert "Traceback" not in output(workdir), output(workdir)[-3000:]
            assert time.monotonic() < deadline, "the run never reached the step"
            time.sleep(0.005)
    finally:
        os.kill(pid, sig)  # also when the wait failed: the run stops
        code = server.wait(pid)
    return code


def stopped_at(printed: str, reason: str) -> int:
    """The step in the run's ``stopped by <reason> at step N;`` line (exactly one such line)."""
    found = re.findall(rf"stopped by {reason} at step (\d+);", printed)
    assert len(found) == 1, printed[-3000:]
    return int(found[0])


def test_sigkill_then_resume_is_bit_identical(tmp_path, fork_server, reference_run):
    workdir = tmp_path / "run"
    assert start_and_interrupt(fork_server, workdir, signal.SIGKILL, after_step=25) == -signal.SIGKILL
    killed_at = last_logged_step(workdir)
    assert killed_at < STEPS, "the run finished before the kill: nothing was tested"
    run_to_end(fork_server, workdir)
    log = records(workdir)
    resumed = [r for r in log if r.get("event") == "resumed"]
    assert len(resumed) == 1 and 0 < resumed[0]["step"] <= killed_at
    assert [r["step"] for r in log if r["split"] == "train"] == list(range(1, STEPS + 1))  # each step once
    assert_bit_identical(final_state(workdir)[0], final_state(reference_run)[0])


def test_sigterm_saves_exits_zero_and_resumes_exactly(tmp_path, fork_server, reference_run):
    workdir = tmp_path / "run"
    assert start_and_interrupt(fork_server, workdir, signal.SIGTERM, after_step=15) == 0, output(workdir)[-3000:]
    printed = output(workdir)
    step = stopped_at(printed, "SIGTERM")
    assert 15 <= step < STEPS and "Traceback" not in printed
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
    assert checkpointer.steps()[-1] == step
    checkpointer.close()
    run_to_end(fork_server, workdir)
    assert_bit_identical(final_state(workdir)[0], final_state(reference_run)[0])


def test_ctrl_c_saves_and_exits_130_like_sigterm(tmp_path, fork_server):
    """Ctrl-C takes SIGTERM's path (the same hook stops the loop and the same save runs, whose
    exact resume the test above checks); here: the exit code, the message, the checkpoint."""
    workdir = tmp_path / "run"
    assert start_and_interrupt(fork_server, workdir, signal.SIGINT, after_step=10) == 130, output(workdir)[-3000:]
    printed = output(workdir)
    step = stopped_at(printed, "Ctrl-C")
    assert step < STEPS and "Traceback" not in printed
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
    assert checkpointer.steps()[-1] == step
    checkpointer.close()
    log = records(workdir)
    assert log[-1] == {"step": step, "split": "run", "event": "interrupted"}

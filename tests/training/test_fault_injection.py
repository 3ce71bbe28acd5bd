"""Fault injection: one run directory, ``kill -9`` at 10 seeded random moments (each restart
resumes and is killed again at the next one), then run to the end; its final state is
bit-identical to an uninterrupted run's, and its metrics log holds every step once.

A moment is a train step drawn by a seeded generator, plus a seeded delay of up to 40 ms
after the log shows that step, so the kills land inside steps, asynchronous checkpoint
saves, log writes and evaluations, not only between them. A kill before the first
checkpoint is complete is one of them: that restart starts afresh and logs its steps again.

Cost: 11 runs of the real entry point here, plus the uninterrupted reference that the resume
tests share (``tests/training/conftest.py``). Each is its own process, forked from one server
process that imported mtl_jax before forking (``tests/training/fork_server.py``), so no run
pays the seconds of imports; all share one JAX persistent compilation cache, so only the
first compiles.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.training.fork_server import (
    EVERY, STEPS, ForkServer, assert_bit_identical, final_state, output, records, run_to_end,
)  # fmt: skip

KILLS = 10
TIMING = {"examples_per_second"}  # the only field of a record that depends on the clock
pytestmark = pytest.mark.slow


def kill_at(server: ForkServer, workdir: Path, step: int, delay: float) -> int:
    """Start (or resume) the run, wait until this process has logged ``step``, wait ``delay``
    seconds more and SIGKILL it; the last step it logged."""
    starts = len(start_events(records(workdir)))
    pid = server.start(workdir)
    try:
        deadline = time.monotonic() + 120
        while True:
            log = records(workdir)
            if len(start_events(log)) > starts and max(r["step"] for r in log) >= step:  # this process's records
                break
            assert "Traceback" not in output(workdir), output(workdir)[-3000:]
            assert time.monotonic() < deadline, f"the run never reached step {step}"
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        os.kill(pid, signal.SIGKILL)  # also when the wait failed: no run outlives the test
        code = server.wait(pid)
    assert code == -signal.SIGKILL, f"exit {code}: the run ended before the kill"
    return max(r["step"] for r in records(workdir))


def start_events(log: list[dict]) -> list[dict]:
    """The record each process writes when it starts (``started``) or resumes."""
    return [r for r in log if r.get("event") in ("started", "resumed")]


def without_timing(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in log if r["split"] != "run"]


def test_ten_seeded_sigkills_then_resume_are_bit_identical_to_an_uninterrupted_run(
    tmp_path, fork_server, reference_run, rng
):
    workdir = tmp_path / "killed"
    early = rng.integers(1, EVERY)  # before the first checkpoint: that restart starts afresh
    moments = np.concatenate([[early], np.sort(rng.choice(np.arange(EVERY + 1, STEPS - 1), KILLS - 1, replace=False))])
    delays = rng.uniform(0.0, 0.04, KILLS)
    killed_at = [kill_at(fork_server, workdir, int(step), float(delay)) for step, delay in zip(moments, delays)]
    assert killed_at[-1] < STEPS, "the last kill came after the end: nothing was tested"
    run_to_end(fork_server, workdir)

    arrays, extra = final_state(workdir)
    expected_arrays, expected_extra = final_state(reference_run)
    assert_bit_identical(arrays, expected_arrays)  # parameters, optimiser and aggregator states, the PRNG key, the step
    assert extra == expected_extra  # the data iterator's position, the best-so-far record

    log, expected_log = records(workdir), records(reference_run)
    assert [r["step"] for r in log if r["split"] == "train"] == list(range(1, STEPS + 1))  # each step once
    assert without_timing(log) == without_timing(expected_log)  # every loss, metric and evaluation
    starts = start_events(log)
    assert len(starts) == KILLS + 1 and starts[-1]["event"] == "resumed"  # every process, the last one resumed
    assert all(r["step"] % EVERY == 0 for r in starts)  # from a saved step
    results = json.loads((workdir / "results.json").read_text())
    assert results["test"] == json.loads((reference_run / "results.json").read_text())["test"]

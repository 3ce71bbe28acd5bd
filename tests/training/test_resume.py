"""Real processes: a run killed with SIGKILL (or stopped with SIGTERM) and started again ends
with parameters bit-identical to an uninterrupted run on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.training.checkpoint import Checkpointer
from tests.training.small_run import train_args

ROOT = Path(__file__).resolve().parents[2]
STEPS = 600
ARGS = {"steps": STEPS, "log_every": 1, "checkpoint__every": 60, "eval_every": 200}
pytestmark = pytest.mark.slow


def command(workdir: Path) -> list[str]:
    return [sys.executable, "-m", "mtl_jax.cli.main", *train_args(workdir, **ARGS)]


def last_logged_step(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return -1
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=-1)


def start_and_interrupt(workdir: Path, sig: int, after_step: int) -> subprocess.Popen:
    """Start a run and send ``sig`` once it has logged ``after_step``."""
    process = subprocess.Popen(command(workdir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while last_logged_step(workdir) < after_step:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never reached the step"
        time.sleep(0.02)
    os.kill(process.pid, sig)
    return process


def run_to_end(workdir: Path) -> str:
    done = subprocess.run(command(workdir), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def final_flat_state(workdir: Path) -> dict[str, np.ndarray]:
    step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert step == STEPS
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
    arrays, _ = checkpointer.restore_arrays(step)
    checkpointer.close()
    return arrays


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, np.ndarray]:
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_to_end(workdir)
    return final_flat_state(workdir)


def assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)


def test_sigkill_then_resume_is_bit_identical(tmp_path, uninterrupted):
    workdir = tmp_path / "run"
    process = start_and_interrupt(workdir, signal.SIGKILL, after_step=250)
    assert process.wait(timeout=60) == -signal.SIGKILL
    killed_at = last_logged_step(workdir)
    assert killed_at < STEPS, "the run finished before the kill: nothing was tested"
    run_to_end(workdir)
    log = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.endswith("}")]
    resumed = [r for r in log if r.get("event") == "resumed"]
    assert len(resumed) == 1 and 0 < resumed[0]["step"] <= killed_at
    assert [r["step"] for r in log if r["split"] == "train"] == list(range(1, STEPS + 1))  # each step once
    assert_bit_identical(final_flat_state(workdir), uninterrupted)


def test_sigterm_saves_exits_zero_and_resumes_exactly(tmp_path, uninterrupted):
    workdir = tmp_path / "run"
    process = start_and_interrupt(workdir, signal.SIGTERM, after_step=150)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "stopped by SIGTERM at step" in stdout
    stopped_at = int(stdout.split("at step ")[1].split(";")[0])
    assert 150 <= stopped_at < STEPS
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
    assert checkpointer.steps()[-1] == stopped_at
    checkpointer.close()
    run_to_end(workdir)
    assert_bit_identical(final_flat_state(workdir), uninterrupted)


def test_ctrl_c_saves_and_exits_130_like_sigterm(tmp_path):
    """Ctrl-C takes SIGTERM's path (the same hook stops the loop and the same save runs, whose
    exact resume the test above checks); here: the exit code, the message, the checkpoint."""
    workdir = tmp_path / "run"
    process = start_and_interrupt(workdir, signal.SIGINT, after_step=60)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "stopped by Ctrl-C at step" in stdout and "Traceback" not in stderr
    stopped_at = int(stdout.split("at step ")[1].split(";")[0])
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
    assert checkpointer.steps()[-1] == stopped_at
    checkpointer.close()
    log = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert log[-1] == {"step": stopped_at, "split": "run", "event": "interrupted"}

"""Multi-host for real: ``mtl-jax train`` as 2 processes × 2 CPU devices joined by
``jax.distributed`` (coordinator on loopback, Gloo collectives) against 1 process × 4 devices;
a killed peer; a restart that resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.training.small_run import CONFIG, overrides

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(workdir: Path, *extra: str, **changes) -> list[str]:
    sets = [x for item in overrides(**changes) for x in ("--set", item)]
    return [sys.executable, "-m", "mtl_jax.cli.main", "train", "--config", str(CONFIG), "--workdir", str(workdir),
            "--quiet", *sets, *extra]


def environment(devices: int) -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"}


def start_pair(workdir: Path, **changes) -> list[subprocess.Popen]:
    port = free_port()
    return [
        subprocess.Popen(
            command(workdir, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i), **changes),
            cwd=ROOT, env=environment(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]


def finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.communicate()[1]) for p in processes]


# One short run for both tests: long enough (with a save every few steps) that a peer can be
# killed half-way, short enough that the pair's start-up dominates.
CHANGES = {"steps": 96, "checkpoint__every": 12, "log_every": 4}


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory) -> Path:
    """An uninterrupted 2 processes × 2 devices run: the reference of both tests."""
    workdir = tmp_path_factory.mktemp("pair") / "run"
    outcomes = finish(start_pair(workdir, **CHANGES), timeout=400)
    assert all(code == 0 for code, _ in outcomes), outcomes
    return workdir


def test_two_processes_of_two_devices_equal_one_process_of_four(tmp_path, pair_run):
    single = subprocess.run(command(tmp_path / "one", **CHANGES), cwd=ROOT, env=environment(4), capture_output=True,
                            text=True, timeout=240)
    assert single.returncode == 0, single.stderr
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((pair_run / "results.json").read_text())
    assert one["devices"].startswith("4 x") and two["devices"].startswith("4 x")
    for task, metrics in one["test"].items():
        for name, value in metrics.items():
            np.testing.assert_allclose(two["test"][task][name], value, rtol=1e-5, atol=1e-6)
    # only process 0 writes the log: every step record appears once
    steps = [r["step"] for r in map(json.loads, (pair_run / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
    assert steps and len(steps) == len(set(steps))


def test_a_killed_peer_gives_one_line_in_bounded_time_and_a_restart_resumes_exactly(tmp_path, pair_run):
    run = tmp_path / "run"
    pair = start_pair(run, **CHANGES)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (metrics.exists() and '"step": 24' in metrics.read_text()):
        time.sleep(0.05)
    assert metrics.exists(), pair[0].stderr.read() if pair[0].poll() is not None else "no progress"
    assert pair[0].poll() is None, "the run ended before the kill: nothing was tested"
    pair[1].kill()  # the supervisor of process 1 ...
    subprocess.run(["pkill", "-9", "-f", "--", f"--workdir {run} .*--process-id 1"], check=False)  # ... and its trainer
    started = time.monotonic()
    code, err = finish([pair[0]], timeout=120)[0]
    assert time.monotonic() - started < 120
    lines = err.strip().splitlines()
    assert code == 2 and lines and lines[-1].startswith("mtl-jax: error: another process"), err
    assert "Traceback" not in err and len(lines) <= 3, err

    restarted = finish(start_pair(run, **CHANGES), timeout=400)
    assert all(c == 0 for c, _ in restarted), restarted
    expected = json.loads((pair_run / "results.json").read_text())["test"]
    assert json.loads((run / "results.json").read_text())["test"] == expected
    events = [r.get("event") for r in map(json.loads, metrics.read_text().splitlines())]
    assert "resumed" in events, "the restart trained from scratch instead of resuming"

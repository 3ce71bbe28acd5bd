"""Multi-host for real: ``mtl-jax train`` as 2 processes × 2 CPU devices joined by
``jax.distributed`` (coordinator on loopback, Gloo collectives) against 1 process × 4 devices;
a killed peer; a restart that resumes.

The reference pair is two fresh ``python -m mtl_jax.cli.main train`` commands, each under its
supervisor process (``mtl_jax.cli.supervise``). The other runs are processes forked from a
server that imported mtl_jax once (``tests/training/fork_server.py``), so they skip the
interpreter's start-up: each still starts its own JAX backend (with its own number of
devices) and joins the job through ``jax.distributed``; the survivor of the killed pair runs
under its supervisor, whose trainer is a fresh interpreter, as in a real job. Every run
shares one JAX persistent compilation cache."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mtl_jax.cli.supervise import SUPERVISED
from tests.helpers import persistent_jit_cache
from tests.training.fork_server import ForkServer
from tests.training.small_run import CONFIG, overrides

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
XLA_FLAGS = os.environ.get("MTL_JAX_TEST_XLA_FLAGS", "")

# One short run for both tests: long enough (with a save every few steps) that a peer can be
# killed a third of the way in, short enough that the pair's start-up dominates.
CHANGES = {"steps": 48, "checkpoint__every": 8, "log_every": 4}
KILL_AFTER = 16  # the step process 0 has logged when process 1 is killed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_args(workdir: Path, *extra: str) -> list[str]:
    sets = [x for item in overrides(**CHANGES) for x in ("--set", item)]
    return ["train", "--config", str(CONFIG), "--workdir", str(workdir), "--quiet", *sets, *extra]


HEARTBEAT_TIMEOUT = 8  # seconds (20 by default): a killed peer is noticed sooner


def job_args(port: int, process_id: int) -> list[str]:
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(process_id),
            "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT)]


def devices(count: int) -> dict[str, str]:
    return {"XLA_FLAGS": f"{XLA_FLAGS} --xla_force_host_platform_device_count={count}"}


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory) -> dict[str, str]:
    """One persistent compilation cache for every run of this module (the suite's own one when
    it set one up): a program is compiled by the first run that needs it."""
    return {"JAX_PLATFORMS": "cpu", **persistent_jit_cache(tmp_path_factory.mktemp("jit_cache"))}


@pytest.fixture(scope="module")
def server(jit_cache) -> Iterator[ForkServer]:
    running = ForkServer({**os.environ, **jit_cache})
    yield running
    running.close()


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory, jit_cache) -> Path:
    """An uninterrupted 2 processes × 2 devices run of the real command: the reference of both tests."""
    workdir = tmp_path_factory.mktemp("pair") / "run"
    port = free_port()
    env = {**os.environ, **jit_cache, **devices(2)}
    pair = [
        subprocess.Popen([sys.executable, "-m", "mtl_jax.cli.main", *train_args(workdir, *job_args(port, i))], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    outcomes = [(p.wait(timeout=400), p.communicate()[1]) for p in pair]
    assert all(code == 0 for code, _ in outcomes), outcomes
    return workdir


class Run:
    """A forked ``mtl-jax`` process: its pid, its stderr file."""

    def __init__(self, server: ForkServer, args: list[str], err: Path, env: dict[str, str]):
        self.server, self.err = server, err
        self.pid = server.run(args, err.with_suffix(".out"), err, env)

    def finish(self, timeout: float) -> tuple[int | None, str]:
        """The exit code (None: still running after ``timeout`` s, then killed) and the stderr."""
        code = self.server.wait(self.pid, timeout)
        if code is None:
            os.kill(self.pid, signal.SIGKILL)
            self.server.wait(self.pid)
        return code, self.err.read_text()


def start_pair(server: ForkServer, workdir: Path, supervised: tuple[bool, bool]) -> list[Run]:
    """Processes 0 and 1 of a 2-process job of 2 devices each; a supervised one is the
    supervisor, which starts its trainer as a fresh interpreter."""
    port = free_port()
    return [
        Run(server, train_args(workdir, *job_args(port, i)), workdir.parent / f"{workdir.name}-{i}-{time.monotonic_ns()}.err",
            {**devices(2), **({} if supervised[i] else {SUPERVISED: "1"})})
        for i in range(2)
    ]  # fmt: skip


def test_two_processes_of_two_devices_equal_one_process_of_four(tmp_path, pair_run, server):
    code, err = Run(server, train_args(tmp_path / "one"), tmp_path / "one.err", devices(4)).finish(240)
    assert code == 0, err
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((pair_run / "results.json").read_text())
    assert one["devices"].startswith("4 x") and two["devices"].startswith("4 x")
    for task, metrics in one["test"].items():
        for name, value in metrics.items():
            np.testing.assert_allclose(two["test"][task][name], value, rtol=1e-5, atol=1e-6)
    # only process 0 writes the log: every step record appears once
    steps = [r["step"] for r in map(json.loads, (pair_run / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
    assert steps and len(steps) == len(set(steps))


def test_a_killed_peer_gives_one_line_in_bounded_time_and_a_restart_resumes_exactly(tmp_path, pair_run, server):
    run = tmp_path / "run"
    pair = start_pair(server, run, supervised=(True, False))  # process 1: the trainer alone, one pid to kill
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (metrics.exists() and f'"step": {KILL_AFTER}' in metrics.read_text()):
        assert server.poll(pair[0].pid) is None and server.poll(pair[1].pid) is None, [r.finish(60) for r in pair]
        time.sleep(0.02)
    assert metrics.exists(), "no progress"
    assert server.poll(pair[0].pid) is None, "the run ended before the kill: nothing was tested"
    os.kill(pair[1].pid, signal.SIGKILL)  # process 1 stops dead
    assert server.wait(pair[1].pid, 60) == -signal.SIGKILL
    started = time.monotonic()
    code, err = pair[0].finish(120)
    assert time.monotonic() - started < 120
    lines = err.strip().splitlines()
    assert code == 2 and lines and lines[-1].startswith("mtl-jax: error: another process"), err
    assert "Traceback" not in err and len(lines) <= 3, err

    restarted = [r.finish(400) for r in start_pair(server, run, supervised=(False, False))]
    assert all(c == 0 for c, _ in restarted), restarted
    expected = json.loads((pair_run / "results.json").read_text())["test"]
    assert json.loads((run / "results.json").read_text())["test"] == expected
    events = [r.get("event") for r in map(json.loads, metrics.read_text().splitlines())]
    assert "resumed" in events, "the restart trained from scratch instead of resuming"

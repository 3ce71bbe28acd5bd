"""Fault injection: one run directory, ``kill -9`` at 10 seeded random moments (each restart
resumes and is killed again at the next one), then run to the end; its final state is
bit-identical to an uninterrupted run's, and its metrics log holds every step once.

A moment is a train step drawn by a seeded generator, plus a seeded delay of up to 40 ms
after the log shows that step, so the kills land inside steps, asynchronous checkpoint
saves, log writes and evaluations, not only between them. A kill before the first
checkpoint is complete is one of them: that restart starts afresh and logs its steps again.

Cost: 12 runs of the real entry point. Each is its own process, forked from one server
process that imported mtl_jax (but started no JAX backend, and no thread) before forking,
so no run pays the ~2.5 s of imports; all share one JAX persistent compilation cache, so
only the first compiles.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from mtl_jax.training.checkpoint import Checkpointer
from tests.training.small_run import train_args

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60
KILLS = 10
EVERY = 5
SETTINGS = {"steps": STEPS, "log_every": 1, "checkpoint__every": EVERY, "eval_every": 20}
TIMING = {"examples_per_second"}  # the only field of a record that depends on the clock
pytestmark = pytest.mark.slow

SERVER = """
import json, os, sys
import mtl_jax.config, mtl_jax.training.experiment, mtl_jax.training.loop  # what `train` imports
import tensorboardX  # imported by the metrics logger (with torch, when installed: ~1.5 s)
from mtl_jax.cli.main import main
for line in sys.stdin:
    request = json.loads(line)
    if request["do"] == "run":
        pid = os.fork()
        if pid == 0:
            sys.stdin.close()
            out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = main(request["args"])
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        reply = {"pid": pid}
    else:
        reply = {"code": os.waitstatus_to_exitcode(os.waitpid(request["pid"], 0)[1])}
    print(json.dumps(reply), flush=True)
os._exit(0)  # stdin closed: no interpreter teardown (seconds, with torch imported)
"""


class ForkServer:
    """Starts ``mtl-jax`` runs as processes forked from a pre-imported server (``SERVER``)."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)

    def start(self, workdir: Path) -> int:
        """The pid of a new process running ``mtl-jax train`` on ``workdir`` (output: ``workdir``.log)."""
        return self.ask(do="run", args=train_args(workdir, **SETTINGS), log=f"{workdir}.log")["pid"]

    def wait(self, pid: int) -> int:
        """The exit code of run ``pid`` once it ended (-9: killed by SIGKILL)."""
        return self.ask(do="wait", pid=pid)["code"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ForkServer]:
    """The fork server, with a persistent compilation cache for every run (the suite's own
    one when it set one up)."""
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(tmp_path_factory.mktemp("jit_cache"))
    server = ForkServer({
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": cache,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    })  # fmt: skip
    yield server
    server.close()


def records(workdir: Path) -> list[dict]:
    """The complete lines of ``metrics.jsonl`` (a line being written is left out)."""
    path = workdir / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def run_to_end(server: ForkServer, workdir: Path) -> None:
    code = server.wait(server.start(workdir))
    assert code == 0, output(workdir)[-3000:]


def output(workdir: Path) -> str:
    """What the runs on ``workdir`` printed (stdout and stderr)."""
    path = Path(f"{workdir}.log")
    return path.read_text() if path.exists() else ""


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


def final_state(workdir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the extra JSON (data iterator position, best) of the last checkpoint."""
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3, read_only=True)
    try:
        assert checkpointer.steps()[-1] == STEPS
        arrays, _ = checkpointer.restore_arrays(STEPS)
        return arrays, checkpointer.restore_extra(STEPS)
    finally:
        checkpointer.close()


def without_timing(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in log if r["split"] != "run"]


def test_ten_seeded_sigkills_then_resume_are_bit_identical_to_an_uninterrupted_run(tmp_path, server, rng):
    reference = tmp_path / "uninterrupted"
    run_to_end(server, reference)
    workdir = tmp_path / "killed"
    early = rng.integers(1, EVERY)  # before the first checkpoint: that restart starts afresh
    moments = np.concatenate([[early], np.sort(rng.choice(np.arange(EVERY + 1, STEPS - 1), KILLS - 1, replace=False))])
    delays = rng.uniform(0.0, 0.04, KILLS)
    killed_at = [kill_at(server, workdir, int(step), float(delay)) for step, delay in zip(moments, delays)]
    assert killed_at[-1] < STEPS, "the last kill came after the end: nothing was tested"
    run_to_end(server, workdir)

    arrays, extra = final_state(workdir)
    expected_arrays, expected_extra = final_state(reference)
    assert arrays.keys() == expected_arrays.keys()
    for name in arrays:  # parameters, optimiser and aggregator states, the PRNG key, the step
        np.testing.assert_array_equal(arrays[name], expected_arrays[name], err_msg=name, strict=True)
    assert extra == expected_extra  # the data iterator's position, the best-so-far record

    log, expected_log = records(workdir), records(reference)
    assert [r["step"] for r in log if r["split"] == "train"] == list(range(1, STEPS + 1))  # each step once
    assert without_timing(log) == without_timing(expected_log)  # every loss, metric and evaluation
    starts = start_events(log)
    assert len(starts) == KILLS + 1 and starts[-1]["event"] == "resumed"  # every process, the last one resumed
    assert all(r["step"] % EVERY == 0 for r in starts)  # from a saved step
    results = json.loads((workdir / "results.json").read_text())
    assert results["test"] == json.loads((reference / "results.json").read_text())["test"]

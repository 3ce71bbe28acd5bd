"""Real ``mtl-jax train`` processes without an interpreter start each: a server process imports
mtl_jax once (and starts no JAX backend and no thread), then forks one child per run; the
child runs :func:`mtl_jax.cli.main.main` and exits with its code. Each child is an ordinary
process: it gets its own signals (SIGKILL, SIGTERM, SIGINT), installs its own handlers, and
starts its own JAX backend. Every run of one server shares a JAX persistent compilation cache,
so only the first run of a program compiles it.

Used by the kill-and-resume tests (``test_resume.py``, ``test_fault_injection.py``), which
also share one uninterrupted reference run (``tests/training/conftest.py``), and by the
multi-host tests (``tests/test_multihost.py``), whose runs set their own number of devices
through the variables a request adds to the child's environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mtl_jax.training.checkpoint import Checkpointer
from tests.training.small_run import train_args

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60
EVERY = 5
# One setting for every kill-and-resume test, so that they can share a reference run: a save
# every EVERY steps, an evaluation every 20, a log record every step.
SETTINGS = {"steps": STEPS, "log_every": 1, "checkpoint__every": EVERY, "eval_every": 20}

SERVER = """
import json, os, sys, time
import mtl_jax.config, mtl_jax.training.experiment, mtl_jax.training.loop  # what `train` imports
from mtl_jax.training.logging_sinks import summary_writer_class
summary_writer_class()  # tensorboardX, imported the way the metrics logger does (without torch)
from mtl_jax.cli.main import main
ended = {}
def reap(pid, block):
    if pid not in ended:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done:
            ended[pid] = os.waitstatus_to_exitcode(status)
    return ended.get(pid)
for line in sys.stdin:
    request = json.loads(line)
    if request["do"] == "run":
        pid = os.fork()
        if pid == 0:
            sys.stdin.close()
            os.environ.update(request["env"])
            for fd, path in ((1, request["out"]), (2, request["err"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), fd)
            sys.argv = ["mtl-jax", *request["args"]]
            code = main(request["args"])
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        reply = {"pid": pid}
    elif request["do"] == "poll":
        reply = {"code": reap(request["pid"], block=False)}
    else:
        deadline = time.monotonic() + request["timeout"]
        while reap(request["pid"], block=False) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        reply = {"code": reap(request["pid"], block=False)}
    print(json.dumps(reply), flush=True)
os._exit(0)  # stdin closed: no interpreter teardown
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

    def run(self, args: list[str], out: Path, err: Path | None = None, env: dict[str, str] | None = None) -> int:
        """The pid of a new process running ``mtl-jax args`` with the variables ``env`` added
        to the server's environment (stdout appended to ``out``, stderr to ``err`` or ``out``)."""
        return self.ask(do="run", args=args, out=str(out), err=str(err or out), env=env or {})["pid"]

    def start(self, workdir: Path) -> int:
        """The pid of a new process training the tiny experiment with ``SETTINGS`` in
        ``workdir`` (stdout and stderr appended to ``workdir``.log)."""
        return self.run(train_args(workdir, **SETTINGS), Path(f"{workdir}.log"))

    def poll(self, pid: int) -> int | None:
        """The exit code of run ``pid`` if it ended, else None."""
        return self.ask(do="poll", pid=pid)["code"]

    def wait(self, pid: int, timeout: float = 300) -> int | None:
        """The exit code of run ``pid`` once it ended (-9: killed by SIGKILL); None if it is
        still running after ``timeout`` seconds."""
        return self.ask(do="wait", pid=pid, timeout=timeout)["code"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def output(workdir: Path) -> str:
    """What the runs on ``workdir`` printed (stdout and stderr)."""
    path = Path(f"{workdir}.log")
    return path.read_text() if path.exists() else ""


def run_to_end(server: ForkServer, workdir: Path) -> None:
    code = server.wait(server.start(workdir))
    assert code == 0, output(workdir)[-3000:]


def records(workdir: Path) -> list[dict]:
    """The complete lines of ``metrics.jsonl`` (a line being written is left out)."""
    path = workdir / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def final_state(workdir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the extra JSON (data iterator position, best) of the last checkpoint,
    which must be the one of the last step."""
    checkpointer = Checkpointer(workdir / "checkpoints", keep=3, read_only=True)
    try:
        assert checkpointer.steps()[-1] == STEPS
        arrays, _ = checkpointer.restore_arrays(STEPS)
        return arrays, checkpointer.restore_extra(STEPS)
    finally:
        checkpointer.close()


def assert_bit_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """The same arrays (parameters, optimiser and aggregator states, PRNG key, step), bit for bit."""
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)

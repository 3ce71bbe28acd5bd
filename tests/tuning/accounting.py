"""Checks shared by the worker tests: every trial of a study accounted for exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from tests.tuning.helpers import cli_command, cli_env, load_study, REPO


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_sweep(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli_command("sweep", *args), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def running_trials(url: str, study: str, started: Callable[[Any], bool]) -> list:
    import optuna  # noqa: PLC0415

    try:
        trials = load_study(url, study).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    except Exception:  # the study is not created yet
        return []
    return [t for t in trials if "pid" in t.user_attrs and started(t)]


def kill_worker_of(trial: Any) -> int:
    pid = int(trial.user_attrs["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


def assert_accounted_once(url: str, study: str, trials: int, killed_number: int) -> dict:
    """Exactly ``trials`` finished trials (complete or pruned), one failed one (the killed
    worker's), retried once with its parameters in its run directory; nothing running or
    waiting; each complete trial's value is its run's best validation value."""
    import optuna  # noqa: PLC0415

    states = optuna.trial.TrialState
    all_trials = load_study(url, study).get_trials()
    by_state = {s: [t for t in all_trials if t.state == s] for s in states}
    finished = by_state[states.COMPLETE] + by_state[states.PRUNED]
    assert len(finished) == trials
    assert [t.number for t in by_state[states.FAIL]] == [killed_number]
    assert not by_state[states.RUNNING] and not by_state[states.WAITING]
    killed = by_state[states.FAIL][0]
    assert "error" not in killed.user_attrs  # failed by the heartbeat, not by the objective
    retries = [t for t in all_trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1 and retries[0].state in (states.COMPLETE, states.PRUNED)
    assert retries[0].params == killed.params and retries[0].user_attrs["run_dir"] == killed.user_attrs["run_dir"]
    run_dirs = [t.user_attrs["run_dir"] for t in finished]
    assert len(set(run_dirs)) == trials  # one run directory per counted trial
    for trial in by_state[states.COMPLETE]:
        results = json.loads((Path(trial.user_attrs["run_dir"]) / "results.json").read_text())
        assert results["best"]["value"] == trial.value
    for trial in by_state[states.PRUNED]:
        assert trial.intermediate_values and (Path(trial.user_attrs["run_dir"]) / "config.json").is_file()
    return {"finished": finished, "complete": by_state[states.COMPLETE], "killed": killed, "retry": retries[0]}

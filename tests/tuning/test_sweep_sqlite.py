"""A real sweep: the trainer's objective, tiny trials, a SQLite study, 2 worker processes,
one worker killed (SIGKILL) mid-trial, the command run again: every trial accounted once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from mtl_jax.config import load_config
from tests.tuning.accounting import assert_accounted_once, kill_worker_of, running_trials, start_sweep, wait_until
from tests.tuning.helpers import TINY_CONFIG, run_cli, write_experiment


@pytest.mark.slow
def test_real_sqlite_sweep_survives_a_killed_worker(tmp_path: Path) -> None:
    config = {**TINY_CONFIG, "steps": 3, "eval_every": 1}  # validation at steps 1, 2, 3: reported to the pruner
    experiment = write_experiment(tmp_path, config=config)
    sweep_dir = tmp_path / "sweep"
    url = f"sqlite:///{sweep_dir / 'study.db'}"
    args = ["--config", str(experiment), "--trials", "4", "--workers", "2", "--heartbeat", "1",
            "--workdir", str(sweep_dir), "--study", "real"]
    process = start_sweep(*args)
    try:
        started = wait_until(
            lambda: running_trials(url, "real", lambda t: (Path(t.user_attrs.get("run_dir", "/-")) / "config.json").exists()
                                   and not (Path(t.user_attrs["run_dir"]) / "results.json").exists()),
            timeout=400, what="a trial training in its run directory",
        )
        victim = started[0]
        kill_worker_of(victim)
        output, _ = process.communicate(timeout=500)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    again = run_cli("sweep", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 trials stored" not in again.stdout and "0 added" in again.stdout
    found = assert_accounted_once(url, "real", 4, victim.number)
    for trial in found["complete"]:
        results = json.loads((Path(trial.user_attrs["run_dir"]) / "results.json").read_text())
        assert results["best"]["metric"] == "mean/accuracy" and results["step"] == 3
        assert trial.value == max(trial.intermediate_values.values())  # the best validation value, not test
    best = load_config(sweep_dir / "best_config.py")  # a ready experiment file
    top = max(found["complete"], key=lambda t: (t.value, -t.number))
    assert best == json.loads((Path(top.user_attrs["run_dir"]) / "config.json").read_text())
    for name in ("history", "parallel_coordinates"):
        assert (sweep_dir / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

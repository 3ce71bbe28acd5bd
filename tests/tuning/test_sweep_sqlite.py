"""A real sweep: the trainer's objective, tiny trials, a SQLite study, 2 worker processes,
one worker killed (SIGKILL) mid-trial, the command run again: every trial accounted once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from mtl_jax.config import load_config
from tests.helpers import persistent_jit_cache
from tests.tuning.accounting import assert_accounted_once, kill_worker_of, running_trials, start_sweep, wait_until
from tests.tuning.helpers import TINY_CONFIG, write_experiment


def training(run_dir: Path) -> bool:
    """Whether a trial's run directory shows a run under way (its config written, no results yet)."""
    return (run_dir / "config.json").exists() and not (run_dir / "results.json").exists()


@pytest.mark.slow
def test_real_sqlite_sweep_survives_a_killed_worker(tmp_path: Path, monkeypatch, capsys) -> None:
    from mtl_jax.cli.tune import main  # noqa: PLC0415

    # the trials' runs share one persistent compilation cache (a program is compiled once)
    for name, value in persistent_jit_cache(tmp_path / "jit_cache").items():
        monkeypatch.setenv(name, value)
    config = {**TINY_CONFIG, "steps": 3, "eval_every": 1}  # validation at steps 1, 2, 3: reported to the pruner
    experiment = write_experiment(tmp_path, config=config)
    sweep_dir = tmp_path / "sweep"
    url = f"sqlite:///{sweep_dir / 'study.db'}"
    # heartbeat 2 s: a trial is stale after 6 s (a live one on a loaded 2-core machine was seen silent for 3 s)
    args = ["--config", str(experiment), "--trials", "4", "--workers", "2", "--heartbeat", "2",
            "--workdir", str(sweep_dir), "--study", "real"]
    process = start_sweep(*args)
    try:
        started = wait_until(  # the run directories first (cheap), the study only once one is training
            lambda: any(map(training, (sweep_dir / "trials").glob("*")))
            and running_trials(url, "real", lambda t: training(Path(t.user_attrs.get("run_dir", "/-")))),
            timeout=400, what="a trial training in its run directory",
        )
        victim = started[0]
        kill_worker_of(victim)
        output, _ = process.communicate(timeout=500)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert main(["sweep", *args]) == 0  # the same command again, in this process: nothing left to run
    again = capsys.readouterr().out
    assert "4 trials stored" not in again and "0 added" in again, again
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

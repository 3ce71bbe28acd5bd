"""Sweep workers with a stand-in objective (no JAX): a preempted trial is retried in its run
directory, a failing one is counted and not retried, a grid is visited point by point. (A
killed worker, with the real trainer: test_sweep_sqlite.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuning.helpers import FAKE, write_experiment


@pytest.mark.slow
def test_a_preempted_trial_is_retried_and_a_failed_one_is_counted_not_retried(tmp_path: Path, capsys) -> None:
    import optuna  # noqa: PLC0415

    from mtl_jax.cli.tune import main  # noqa: PLC0415 - in this process: the workers are subprocesses anyway
    from tests.tuning.helpers import load_study  # noqa: PLC0415

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "preempt-once").touch()
    url = f"sqlite:///{sweep_dir / 'study.db'}"
    args = ["sweep", "--config", str(write_experiment(tmp_path)), "--trials", "3", "--heartbeat", "1",
            "--workdir", str(sweep_dir), "--objective", FAKE, "--study", "flags"]
    assert main(args) == 1, capsys.readouterr()  # trial 0 is preempted: its worker stops, the study is left unfinished
    assert "run the same command again" in capsys.readouterr().out
    (sweep_dir / "fail-once").touch()
    assert main(args) == 0, capsys.readouterr()
    second = capsys.readouterr().out
    trials = load_study(url, "flags").get_trials()
    states = optuna.trial.TrialState
    preempted, failed = trials[0], [t for t in trials if "error" in t.user_attrs]
    assert preempted.state == states.FAIL and "error" not in preempted.user_attrs
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].params == preempted.params
    assert retry[0].user_attrs["run_dir"] == preempted.user_attrs["run_dir"]
    assert len(failed) == 1 and failed[0].state == states.FAIL and "ValueError: fail-once" in failed[0].user_attrs["error"]
    assert f"trial {failed[0].number} failed: ValueError: fail-once" in second
    assert not [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]  # not retried
    assert len(trials) == 4 and sum(t.state == states.COMPLETE for t in trials) == 2  # 3 slots: 2 complete + 1 failed


def test_a_grid_sweep_visits_every_point_once(tmp_path: Path, capsys) -> None:
    from mtl_jax.cli.tune import main  # noqa: PLC0415 - in this process: the workers are subprocesses anyway
    from tests.tuning.helpers import load_study  # noqa: PLC0415

    grid_space = '{"batch_size": Choice([16, 32]), "model.dropout": Float(0.0, 0.2, step=0.1)}'
    experiment = write_experiment(tmp_path, grid_space)
    args = ["sweep", "--config", str(experiment), "--sampler", "grid", "--workdir", str(tmp_path / "sweep"),
            "--objective", FAKE, "--study", "grid"]
    assert main([*args, "--trials", "7"]) == 2
    assert "more than the 6 points of the grid" in capsys.readouterr().err
    assert main([*args, "--trials", "4"]) == 0
    assert main([*args, "--trials", "6"]) == 0  # extends the same study to the whole grid
    trials = load_study(f"sqlite:///{tmp_path / 'sweep' / 'study.db'}", "grid").get_trials()
    points = sorted((t.params["batch_size"], round(t.params["model.dropout"], 9)) for t in trials)
    assert points == [(b, d) for b in (16, 32) for d in (0.0, 0.1, 0.2)]

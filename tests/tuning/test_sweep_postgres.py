"""Two sweep workers share one study in a real (throwaway) PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


from tests.tuning.fake_objective import RENDEZVOUS, value_of
from tests.tuning.helpers import FAKE, load_study, write_experiment
from tests.tuning.postgres import throwaway_server


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path: Path, capsys, monkeypatch) -> None:
    import optuna  # noqa: PLC0415

    from mtl_jax.cli.tune import main  # noqa: PLC0415 - the command in this process, its workers in two others

    experiment = write_experiment(tmp_path)
    monkeypatch.setenv(RENDEZVOUS, str(tmp_path / "rendezvous"))  # the workers inherit it
    with throwaway_server() as url:
        args = ["sweep", "--config", str(experiment), "--trials", "4", "--workers", "2", "--storage", url,
                "--study", "pg", "--workdir", str(tmp_path / "sweep"), "--objective", FAKE, "--sampler", "random"]
        assert main(args) == 0
        trials = load_study(url.replace("postgresql://", "postgresql+psycopg2://"), "pg").get_trials()
        capsys.readouterr()
        monkeypatch.delenv(RENDEZVOUS)
        assert main(args) == 0  # a rerun finds the study finished in the database
        assert "4 trials stored, 0 added" in capsys.readouterr().out
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both workers took trials
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        config = json.loads((run_dir / "config.json").read_text())
        assert trial.value == pytest.approx(value_of(config), rel=0, abs=0)
        assert config["optimizer"]["learning_rate"] == trial.params["optimizer.learning_rate"]

"""Bad input to `mtl-jax sweep`: one line naming the problem, exit code 2, no study created."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


from mtl_jax.cli.tune import main
from tests.tuning.helpers import FAKE, write_experiment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep(tmp_path: Path, experiment: Path, *extra: str) -> list[str]:
    return ["sweep", "--config", str(experiment), "--workdir", str(tmp_path / "sweep"), "--objective", FAKE, *extra]


CASES = {
    "unknown key": ('{"optimizer.learning_rat": Float(1e-4, 1e-2, log=True)}', [], "'optimizer.learning_rat' is not a key"),
    "float for an int key": ('{"batch_size": Float(8.0, 32.0)}', [], "'batch_size' is a int"),
    "choice of the wrong type": ('{"model.dropout": Choice(["none", "some"])}', [], "offers 'none'"),
    "rate out of range at a corner": ('{"model.dropout": Float(0.0, 1.5)}', [], "model.dropout=1.5 is refused"),
    "unknown aggregator option": (
        '{"aggregator": Choice(["sum", "cagrad"], when={"cagrad": {"aggregator_options.cc": Float(0.1, 0.9)}})}', [],
        "has no option 'cc'",
    ),
    "mode the method lacks": ('{"aggregator": Choice(["sum", "mgda_ub"]), "mode": Choice(["full"])}', [], "mgda_ub"),
    "log with low 0": ('{"optimizer.learning_rate": Float(0.0, 1e-2, log=True)}', [], "needs low > 0"),
    "not a distribution": ('{"optimizer.learning_rate": (1e-4, 1e-2)}', [], "is not a distribution"),
    "trials 0": (None, ["--trials", "0"], "--trials must be a positive integer, got 0"),
    "bad storage url": (None, ["--storage", "mysql//nowhere"], "is not a storage URL"),
    "grid of a continuous space": (None, ["--sampler", "grid"], "continuous Float"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_no_study(tmp_path: Path, capsys, case: str) -> None:
    space, extra, expected = CASES[case]
    experiment = write_experiment(tmp_path, space) if space else write_experiment(tmp_path)
    args = sweep(tmp_path, experiment, *(extra or []))
    if "--trials" not in args:
        args += ["--trials", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mtl-jax: error: ")
    assert expected in err
    assert not (tmp_path / "sweep").exists()


def test_unreachable_database_is_refused_before_anything(tmp_path: Path, capsys) -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/sweeps"
    assert main([*sweep(tmp_path, write_experiment(tmp_path)), "--trials", "2", "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be reached" in err and "secret" not in err
    assert not (tmp_path / "sweep").exists()


def test_a_study_written_with_another_space_is_refused_naming_the_difference(tmp_path: Path, capsys) -> None:
    first = write_experiment(tmp_path)
    assert main([*sweep(tmp_path, first), "--trials", "1"]) == 0
    capsys.readouterr()
    db = tmp_path / "sweep" / "study.db"
    before = db.read_bytes()
    changed = write_experiment(tmp_path, '{"optimizer.learning_rate": Float(1e-5, 1e-1, log=True), "model.dropout": Float(0.0, 0.3)}')
    assert main([*sweep(tmp_path, changed), "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different search space" in err
    assert "optimizer.learning_rate: Float(0.0001, 0.1, log=True) -> Float(1e-05, 0.1, log=True)" in err
    assert db.read_bytes() == before

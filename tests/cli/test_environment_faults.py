"""Environment faults through the real entry point: a run directory another process trains,
a disk that refuses writes, a path that cannot be a directory. Each gets one line and exit 2,
no traceback, and nothing of an existing run lost."""

from __future__ import annotations

import errno
import json

import pytest

from mtl_jax.cli.main import environment_fault, lost_peer, main
from mtl_jax.training import logging_sinks
from mtl_jax.training.run_dir import RunLock
from tests.cli.conftest import checksums, data_dir_state
from tests.training.small_run import train_args


def assert_one_line(code: int, err: str, pattern: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert 1 <= len(lines) <= 3 and lines[0].startswith("mtl-jax: error: "), err
    assert "Traceback" not in err and pattern in err, err


def test_a_second_trainer_on_a_locked_run_directory_is_refused_naming_the_holder(tmp_path, capsys, data_before):
    run = tmp_path / "run"
    lock = RunLock(run)  # as a running `mtl-jax train` holds it
    try:
        before = checksums(run)
        code = main(train_args(run))
        assert_one_line(code, capsys.readouterr().err, "is being trained by process")
        assert checksums(run) == before and data_dir_state() == data_before
    finally:
        lock.close()


def test_the_lock_is_released_when_its_holder_closes(tmp_path):
    run = tmp_path / "run"
    RunLock(run).close()
    RunLock(run).close()  # a stale .lock file never blocks


def test_a_full_disk_while_logging_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    original = logging_sinks.MetricsLogger.write
    calls = {"n": 0}

    def write_until_full(self, step, split, scalars, **facts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return original(self, step, split, scalars, **facts)

    monkeypatch.setattr(logging_sinks.MetricsLogger, "write", write_until_full)
    code = main(train_args(run))
    assert_one_line(code, capsys.readouterr().err, "the disk is full; free space")
    monkeypatch.setattr(logging_sinks.MetricsLogger, "write", original)
    assert main(train_args(run)) == 0  # space freed: the same command resumes and finishes
    assert json.loads((run / "results.json").read_text())["step"] == 12


def test_a_workdir_below_a_file_is_one_line(tmp_path, capsys, data_before):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = main(train_args(blocker / "run"))
    err = capsys.readouterr().err
    assert_one_line(code, err, "a_file")
    assert blocker.read_text() == "not a directory" and data_dir_state() == data_before


@pytest.mark.parametrize(
    ("number", "fix"),
    [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"), (errno.ENOSPC, "disk is full")],
)
def test_environment_faults_name_the_fix(number, fix):
    line = environment_fault(OSError(number, "x", "/some/path"))
    assert fix in line and "/some/path" in line and "\n" not in line


def test_a_lost_peer_is_recognised_and_other_runtime_errors_are_not():
    assert "restart every process" in lost_peer(RuntimeError("UNAVAILABLE: heartbeat timeout from task 1"))
    assert lost_peer(RuntimeError("shapes do not match")) is None


def test_fine_tuning_records_its_lineage_and_starts_from_the_source(tmp_path, capsys):
    source, tuned = tmp_path / "source", tmp_path / "tuned"
    assert main(train_args(source)) == 0
    assert main(train_args(tuned, "--init-from", str(source), steps=4)) == 0
    lineage = json.loads((tuned / "init_from.json").read_text())
    assert str(source) in json.dumps(lineage)
    first_loss = json.loads((tuned / "results.json").read_text())["first_train_loss"]
    fresh_first = json.loads((source / "results.json").read_text())["first_train_loss"]
    assert all(first_loss[task] < fresh_first[task] for task in first_loss)  # trained weights, not fresh ones

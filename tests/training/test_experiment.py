"""The Experiment: built once, injected into, restored from a run directory without writing,
and shared by train, eval and extra hooks. One compiled experiment serves the module."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.config import ModelConfig
from mtl_jax.training.checkpoint import Checkpointer, CorruptCheckpointWarning, flatten_state
from mtl_jax.training.experiment import Experiment, build_model
from mtl_jax.training.hooks import Hook
from mtl_jax.training.loop import evaluate_run, train
from tests.training.small_run import tiny_config

pytestmark = pytest.mark.slow


def checksums(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}  # fmt: skip


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    return Experiment.from_config(tiny_config(steps=8, eval_every=4, log_every=2))


@pytest.fixture(scope="module")
def finished(experiment, tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    return run_dir, train(experiment, workdir=run_dir, progress=False)


def test_a_model_builder_is_injected_not_patched(experiment):
    calls = []

    def builder(model_config, spec, task_names, seed):
        calls.append((model_config, spec.name, tuple(task_names), seed))
        return build_model(model_config, spec, task_names, seed)

    built = Experiment.from_config(experiment.config, data=experiment.data, build_model=builder)
    assert calls == [(experiment.config.model, "multi_mnist", ("left", "right"), 0)]
    assert isinstance(calls[0][0], ModelConfig) and built.data is experiment.data
    assert built.task_names == ("left", "right")


def test_restore_reads_only_and_gives_the_best_or_the_latest(experiment, finished):
    run_dir, results = finished
    before = checksums(run_dir)
    latest_step, latest = experiment.restore(run_dir, "latest")
    best_step, _ = experiment.restore(run_dir, "best")
    assert checksums(run_dir) == before
    assert latest_step == 8 and best_step == results["best"]["step"]
    checkpointer = Checkpointer(run_dir / "checkpoints", read_only=True)
    saved, extra = checkpointer.restore_arrays(8)
    checkpointer.close()
    restored = flatten_state(latest)
    assert restored.keys() == saved.keys()
    for name in saved:
        np.testing.assert_array_equal(restored[name], saved[name], err_msg=name)
    assert extra["first_train_loss"] == results["first_train_loss"]


def test_eval_of_the_run_uses_the_built_experiment(experiment, finished):
    run_dir, results = finished
    rebuilt = Experiment.from_run_dir(run_dir, data=experiment.data)
    assert rebuilt.config == experiment.config
    evaluated = evaluate_run(run_dir, "test", "latest", experiment=experiment)
    assert evaluated["step"] == 8 and evaluated["test"] == results["test"]


def test_a_finished_run_started_again_regenerates_its_results_with_the_first_loss(experiment, finished):
    run_dir, results = finished
    (run_dir / "results.json").unlink()
    again = train(experiment, workdir=run_dir, progress=False)
    assert again["first_train_loss"] == results["first_train_loss"] is not None
    assert again["test"] == results["test"] and again["step"] == 8
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["first_train_loss"] == results["first_train_loss"]
    log = records(run_dir)
    assert [r["step"] for r in log if r["split"] == "train"] == [1, 2, 4, 6, 8]  # no new train records
    assert [r.get("event") for r in log if r["split"] == "run"] == ["started", "resumed"]


class PruneAtFirstEval(Hook):
    """A tuning hook: reads each validation result and stops the run after the first."""

    def __init__(self):
        self.reported = []

    def after_eval(self, step, state, result):
        self.reported.append((step, result.value))
        self.stop_reason = "pruned"


def test_an_extra_hook_sees_each_validation_and_can_stop_the_run(experiment, tmp_path):
    pruner = PruneAtFirstEval()
    results = train(experiment, workdir=tmp_path / "run", progress=False, hooks=(pruner,))
    assert results == {"preempted": True, "stopped": "pruned", "step": 4, "run_dir": str(tmp_path / "run")}
    log = records(tmp_path / "run")
    validation = [r for r in log if r["split"] == "validation"]
    assert experiment.config.best_metric == "mean/accuracy"
    assert [(r["step"], pytest.approx((r["accuracy/left"] + r["accuracy/right"]) / 2)) for r in validation] == pruner.reported
    assert log[-1] == {"step": 4, "split": "run", "event": "pruned"}
    checkpointer = Checkpointer(tmp_path / "run" / "checkpoints", read_only=True)
    assert checkpointer.steps() == [4]
    checkpointer.close()


def test_a_corrupt_latest_checkpoint_is_set_aside_and_the_run_finishes_identically(experiment, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(experiment, workdir=run_dir, progress=False)
    checkpointer = Checkpointer(run_dir / "checkpoints", read_only=True)
    assert checkpointer.steps() == [4, 8]
    uninterrupted, _ = checkpointer.restore_arrays(8)
    checkpointer.close()
    for path in (run_dir / "checkpoints" / "8" / "state").rglob("*"):
        if path.is_file() and "commit" not in path.name:
            path.unlink()
    (run_dir / "results.json").unlink()
    with pytest.warns(CorruptCheckpointWarning):
        results = train(experiment, workdir=run_dir, progress=False)
    assert results["step"] == 8
    assert (run_dir / "checkpoints" / "unreadable-8").is_dir()  # set aside, not deleted
    checkpointer = Checkpointer(run_dir / "checkpoints", read_only=True)
    resumed, _ = checkpointer.restore_arrays(8)
    checkpointer.close()
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)

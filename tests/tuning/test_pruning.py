"""The pruning hook reports each validation to the trial and stops the run when told to."""

from __future__ import annotations

from mtl_jax.training.hooks import EvalResult, stop_reason
from mtl_jax.tuning.pruning import PRUNED, PruningHook


class RecordingTrial:
    """Stands in for optuna.Trial: prunes once ``prune_after`` reports were made."""

    def __init__(self, prune_after: int):
        self.prune_after, self.reports = prune_after, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reports) >= self.prune_after


def result(step: int, value: float) -> EvalResult:
    return EvalResult(step, "validation", {"t": {"accuracy": value}}, value, True, value)


def test_each_validation_is_reported_and_the_pruner_stops_the_run() -> None:
    trial = RecordingTrial(prune_after=2)
    hook = PruningHook(trial)
    hook.after_eval(10, None, result(10, 0.25))
    assert trial.reports == [(10, 0.25)] and stop_reason([hook]) is None
    hook.after_eval(20, None, result(20, 0.5))
    assert trial.reports == [(10, 0.25), (20, 0.5)] and stop_reason([hook]) == PRUNED

"""The pruning hook: each validation of a trial's run goes to the Optuna trial.

:class:`PruningHook` listens to the trainer's evaluation (``after_eval``): it reports the
best-so-far metric's value at that step (``trial.report(value, step)``) and, when the
study's pruner says the trial is behind (``trial.should_prune()``), sets ``stop_reason =
"pruned"``: the loop saves a checkpoint and returns, and the objective raises
``optuna.TrialPruned``. The run directory stays an ordinary, resumable one.
"""

from __future__ import annotations

from typing import Any

from mtl_jax.training.hooks import EvalResult, Hook

PRUNED = "pruned"


class PruningHook(Hook):
    """Reports every validation to ``trial`` and stops the run when the pruner says so."""

    def __init__(self, trial: Any):
        self.trial = trial
        self.reported: list[tuple[int, float]] = []

    def after_eval(self, step: int, state: Any, result: EvalResult) -> None:
        self.trial.report(float(result.value), int(step))
        self.reported.append((int(step), float(result.value)))
        if self.trial.should_prune():
            self.stop_reason = PRUNED

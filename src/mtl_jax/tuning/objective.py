"""The sweep objective: train the trial's config in its run directory, return the best
validation value of the config's ``best_metric``.

The value is the best-so-far value the trainer tracked on ``eval_split`` (never the test
split: :func:`mtl_jax.tuning.runs.check_objective`). Every evaluation is reported to the
trial through the trainer's evaluation hook, which raises ``optuna.TrialPruned`` when the
pruner says so (:mod:`mtl_jax.tuning.pruning`).
"""

from __future__ import annotations

from typing import Any, Mapping

from mtl_jax.tuning import runs
from mtl_jax.tuning.space import apply
from mtl_jax.tuning.suggest import draw


def trial_config(trial: Any, config: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with the values ``trial`` draws from ``space``."""
    return apply(config, draw(trial, space))


def train_trial(trial: Any, config: Mapping[str, Any], space: Mapping[str, Any], run_dir: str) -> float:
    import optuna  # noqa: PLC0415

    from mtl_jax.tuning.pruning import PRUNED, PruningHook  # noqa: PLC0415 - imports JAX
    from mtl_jax.tuning.study import Preempted  # noqa: PLC0415

    run_config = trial_config(trial, config, space)
    runs.check_run_config(run_config)
    results = runs.train_run(run_config, run_dir, hooks=[PruningHook(trial)])
    if results.get("stopped") == PRUNED:
        raise optuna.TrialPruned(f"pruned at step {results['step']}")
    if results.get("preempted"):
        raise Preempted(f"stopped at step {results['step']}")
    return float(results["best"]["value"])

"""Training a run: ``train(config, workdir=...)`` and ``evaluate_run(workdir, split)``.

Order of work (nothing is written or compiled until every check has passed):

1. the :class:`~mtl_jax.training.experiment.Experiment` is built: the config, the data, the
   model, optimiser, aggregator and step are checked against each other;
2. the run directory is checked: same config → resume, different config → refused; the
   latest readable checkpoint (if any) is restored, with the data iterator's position;
3. only then: ``--overwrite`` deletes the old run, ``config.json`` is written;
4. the loop, "step, then each hook" (:mod:`mtl_jax.training.hooks`): the non-finite guard,
   the metrics log, validation with best-so-far, checkpoints, preemption, progress;
5. at the end: validation and test metrics, Δm%, ``results.json``.

SIGTERM (preemption) finishes the current step, saves a checkpoint and returns normally.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax

from mtl_jax.config import RunConfig
from mtl_jax.errors import ConfigError
from mtl_jax.evaluation import BestTracker
from mtl_jax.parallel import is_lead_process, replicate, wait_for_every_process
from mtl_jax.surgery.nonfinite import skipped_updates
from mtl_jax.training import hooks as H
from mtl_jax.training.checkpoint import Checkpointer, saved_steps, set_aside
from mtl_jax.training.experiment import CHECKPOINTS, Experiment
from mtl_jax.training.hooks import NonFiniteLossError
from mtl_jax.training.logging_sinks import MetricsLogger, NullLogger, drop_records_after, eval_scalars, stdout_echo
from mtl_jax.training.run_dir import RESULTS_FILE, RunLock, check_run_dir, prepare_run_dir

__all__ = ["NonFiniteLossError", "RESULTS_FILE", "evaluate_run", "train"]


def _experiment(config: Experiment | RunConfig | Mapping[str, Any]) -> Experiment:
    return config if isinstance(config, Experiment) else Experiment.from_config(config)


def _previous_first_loss(run_dir: Path) -> dict[str, float] | None:
    """``first_train_loss`` of an earlier ``results.json`` (runs saved before it was checkpointed)."""
    try:
        return json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8")).get("first_train_loss")
    except (OSError, ValueError, AttributeError):
        return None


def _devices(experiment: Experiment) -> str:
    return f"{experiment.mesh.size} x {jax.devices()[0].device_kind}"


def train(
    config: Experiment | RunConfig | Mapping[str, Any],
    *,
    workdir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    json_log: bool = False,
    hooks: Sequence[H.Hook] = (),
) -> dict[str, Any]:
    """Train (or resume) the run in ``workdir``; return its results.

    Args:
      config: an Experiment, a RunConfig, or a resolved config dict.
      workdir: the run directory.
      overwrite: delete an existing run there (only after every check has passed).
      progress: show a progress bar.
      json_log: echo every metrics record as JSON on stdout.
      hooks: extra hooks, run after the built-in ones; they also receive every validation
        result (``after_eval``) and may stop the run (``stop_reason``).

    Returns:
      ``{"preempted": True, "stopped": reason, "step", "run_dir"}`` when a hook stopped the run
      (a checkpoint was saved), else the results (also written to ``results.json``).
    """
    # ---------------------------------------------------------------- build and check
    experiment = _experiment(config)
    config = experiment.config
    run_dir = Path(workdir)
    resume = check_run_dir(run_dir, config.to_dict(), overwrite)
    state = experiment.initial_state()
    batches = experiment.train_batches()
    best = BestTracker(config.best_metric, exclude=config.auxiliary_tasks)
    first_loss, restored_step, unreadable = None, None, []
    if resume and saved_steps(run_dir / CHECKPOINTS):
        restored_step, state, extra = experiment.restore_with_extra(run_dir, "latest")
        batches.set_state(extra["data"])
        best = BestTracker.from_json(extra["best"], exclude=config.auxiliary_tasks)
        first_loss = extra.get("first_train_loss") or _previous_first_loss(run_dir)
        unreadable = [step for step in saved_steps(run_dir / CHECKPOINTS) if step > restored_step]

    state = replicate(state, experiment.mesh)
    position = batches.get_state()
    experiment.trace(state, next(batches))
    batches.set_state(position)

    # ---------------------------------------------------------------- write the run directory
    # Multi-process: process 0 owns the run directory (lock, config, logs, results); every
    # process takes part in the Orbax checkpoints.
    wait_for_every_process("mtl_jax: run directory read")  # so that none sees process 0's writes as another run's
    lead = is_lead_process()
    lock = RunLock(run_dir) if lead else None
    if lead:
        prepare_run_dir(run_dir, config.to_dict(), overwrite, resume)
        set_aside(run_dir / CHECKPOINTS, unreadable)
        if resume:  # records after the restored step (all of them without a checkpoint) come again
            drop_records_after(run_dir, restored_step if restored_step is not None else 0)
    start_step = int(state.step)
    logger = MetricsLogger(run_dir, echo=stdout_echo(json_log)) if lead else NullLogger()
    logger.write(start_step, "run", {}, event="resumed" if restored_step is not None else "started",
                 devices=_devices(experiment))  # fmt: skip

    # ---------------------------------------------------------------- hooks
    task_names = experiment.task_names
    log = H.MetricsLog(
        logger, task_names, every=config.log_every, last_step=config.steps, batch_size=config.batch_size,
        learning_rate=config.optimizer.learning_rate, first_train_loss=first_loss,
    )  # fmt: skip
    saver = H.CheckpointSaver(
        Checkpointer(run_dir / CHECKPOINTS, keep=config.checkpoint.keep),
        lambda: {"data": batches.get_state(), "best": best.to_json(), "first_train_loss": log.first_train_loss},
        every=config.checkpoint.every, last_step=config.steps, saved_step=restored_step,
    )  # fmt: skip
    evaluation = H.Evaluation(
        experiment.evaluator, config.eval_split, best, every=config.eval_every, last_step=config.steps,
        logger=logger, listeners=(saver, *hooks),
    )  # fmt: skip
    all_hooks: list[H.Hook] = [log, evaluation, saver, H.Preemption(),
                               H.Progress(task_names, total=config.steps, every=config.log_every, enabled=progress)]
    if config.nonfinite == "stop":
        all_hooks.insert(0, H.NonFiniteGuard(task_names))
    all_hooks += hooks

    # ---------------------------------------------------------------- the loop
    step = start_step
    with H.closing([*all_hooks, _Closing(logger), *([_Closing(lock)] if lock else [])]):
        H.run_hooks(all_hooks, "start", step, state)
        started = time.perf_counter()
        while step < config.steps and H.stop_reason(all_hooks) is None:
            state, metrics = experiment.step(state, next(batches))
            step += 1
            H.run_hooks(all_hooks, "after_step", step, state, metrics)
        jax.block_until_ready(state)
        seconds = time.perf_counter() - started
        stopped = H.stop_reason(all_hooks) if step < config.steps else None
        H.run_hooks(all_hooks, "end", step, state, stopped=stopped is not None)

        # ------------------------------------------------------------ stopped early
        if stopped is not None:
            logger.write(step, "run", {}, event=stopped)
            return {"preempted": True, "stopped": stopped, "step": step, "run_dir": str(run_dir)}

        # ------------------------------------------------------------ results
        test = experiment.evaluate(state.params, config.test_split)
        results = {
            "run_dir": str(run_dir),
            "step": step,
            "preempted": False,
            "validation": evaluation.last.metrics,
            "test": test,
            "best": best.to_json(),
            "skipped_updates": int(skipped_updates(state.opt_state)),
            "first_train_loss": log.first_train_loss,
            "train_seconds": seconds,
            "examples_per_second": (step - start_step) * config.batch_size / max(seconds, 1e-9),
            "devices": _devices(experiment),
        }
        delta = experiment.delta_m(test)
        if delta is not None:
            results["delta_m"] = delta
        logger.write(step, config.test_split, eval_scalars(test), event="finished")
        if lead:
            (run_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return results


class _Closing(H.Hook):
    """Closes the metrics logger (or releases the run lock) last."""

    def __init__(self, closable: MetricsLogger | NullLogger | RunLock):
        self.closable = closable

    def close(self) -> None:
        self.closable.close()


def evaluate_run(workdir: str | Path, split: str, which: str = "best", *, experiment: Experiment | None = None) -> dict[str, Any]:
    """Metrics of a saved run on ``split``, from its best (or latest) checkpoint. Reads only."""
    run_dir = Path(workdir)
    experiment = Experiment.from_run_dir(run_dir) if experiment is None else experiment
    if split not in experiment.data.splits:
        raise ConfigError(
            f"--split {split!r} is not a split of {experiment.data.spec.name}; accepted values:"
            f" {', '.join(sorted(experiment.data.splits))}"
        )
    step, state = experiment.restore(run_dir, which)
    test = experiment.evaluate(state.params, split)
    results = {"run_dir": str(run_dir), "step": step, "split": split, "test": test}
    delta = experiment.delta_m(test)
    if delta is not None:
        results["delta_m"] = delta
    return results

"""The training loop: config → checks → data, model, step → batches, logs, checkpoints.

Order of work (nothing is written or compiled until every check has passed):

1. the resolved config is checked against the registries and the device count;
2. the dataset is opened (read only), the tasks, splits and best-so-far metric are checked
   against its spec, and the first batch's labels against the heads;
3. the run directory is checked: same config → resume, different config → refused;
4. the model, optimiser and aggregator are built; then ``config.json`` is written and the
   latest readable checkpoint (if any) is restored, with the data iterator's position;
5. the loop: Python feeds batches and reads metrics back every ``log_every`` steps;
   checkpoints every ``checkpoint.every`` steps (asynchronous), evaluation every
   ``eval_every`` steps (best-so-far tracked and kept by the checkpoint manager);
6. at the end: evaluation on the validation and test splits, ``results.json``.

SIGTERM (preemption) finishes the current step, saves a checkpoint and returns normally.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from tqdm import tqdm

from mtl_jax.aggregators import REGISTRY as AGGREGATORS
from mtl_jax.aggregators import get_aggregator
from mtl_jax.errors import ConfigError
from mtl_jax.errors import DataError
from mtl_jax.evaluation import BestTracker, delta_m, evaluate, make_evaluator
from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND
from mtl_jax.training import data_source, model_source
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.logging_sinks import MetricsLogger, eval_scalars, stdout_echo, step_scalars
from mtl_jax.parallel import data_mesh, replicate
from mtl_jax.surgery.nonfinite import keep_state_when_nonfinite, skip_nonfinite_updates, skipped_updates
from mtl_jax.training.optimizers import OPTIMIZERS, make_optimizer
from mtl_jax.training.run_config import check_against_dataset, check_config, resolve
from mtl_jax.training.run_dir import check_run_dir, prepare_run_dir
from mtl_jax.surgery.state import create_train_state
from mtl_jax.surgery.step import MODES, make_train_step

RESULTS_FILE = "results.json"


class NonFiniteLossError(RuntimeError):
    """A task loss became NaN or Inf and the config says ``nonfinite: "stop"``."""


class StopFlag:
    """Set by SIGTERM; the loop stops after the current step."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum, frame) -> None:
        del signum, frame
        self.raised = True


@contextlib.contextmanager
def sigterm_sets(flag: StopFlag) -> Iterator[None]:
    """Route SIGTERM to ``flag`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, flag)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_baselines(config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{task: test metrics} from each baseline run's ``results.json``."""
    baselines = {}
    for task, run_dir in config["baselines"].items():
        path = Path(run_dir) / RESULTS_FILE
        try:
            baselines[task] = json.loads(path.read_text(encoding="utf-8"))["test"][task]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"config key 'baselines.{task}': {path} has no test results for {task!r} ({type(error).__name__});"
                " name the run directory of a finished single-task run of that task"
            ) from error
    return baselines


def check_finite_losses(losses: np.ndarray, task_names, step: int) -> None:
    """NonFiniteLossError naming the first task whose loss is NaN or Inf at ``step``."""
    bad = [name for name, value in zip(task_names, losses) if not np.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"the loss of task {bad[0]!r} is {losses[list(task_names).index(bad[0])]} at step {step};"
            " the update was skipped and the parameters are finite (last checkpoint kept). Fix: lower"
            " optimizer.learning_rate, check the data, or set nonfinite='skip' to skip such steps"
        )


def prepare(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every check that needs no disk writes and no compilation; the pieces to train with."""
    config = resolve(config)
    mesh = data_mesh()
    check_config(
        config, datasets=data_source.dataset_names(),
        aggregators=AGGREGATORS, optimizers=OPTIMIZERS, modes=MODES, num_devices=mesh.size,
    )
    optimizer = skip_nonfinite_updates(make_optimizer(config["optimizer"]))
    aggregator = get_aggregator(config["aggregator"], **config["aggregator_options"])  # ConfigError if bad
    data = data_source.open_data(config)
    task_names = check_against_dataset(config, data.spec, data.splits)
    specs = {name: data.spec.task(name) for name in task_names}
    iterator = data.train_batches("train", config["batch_size"], config["seed"])
    start = iterator.get_state()
    data_source.check_labels_fit(next(iterator), specs.values())
    iterator.set_state(start)
    baselines = read_baselines(config)
    model, params = model_source.build(config["model"], data.spec, task_names, config["seed"])
    return {
        "config": config, "mesh": mesh, "optimizer": optimizer,
        "aggregator": keep_state_when_nonfinite(aggregator), "data": data, "specs": specs,
        "iterator": iterator, "baselines": baselines, "model": model, "params": params,
    }


def run_evaluation(parts: Mapping[str, Any], evaluator, params, split: str) -> dict[str, dict[str, float]]:
    config, data = parts["config"], parts["data"]
    label_keys = [spec.label_key for spec in parts["specs"].values()]
    batches = data.eval_batches(split, config["eval_batch_size"], label_keys)
    return evaluate(evaluator, params, batches, parts["mesh"], parts["specs"])


def add_delta_m(results: dict, parts: Mapping[str, Any]) -> None:
    if parts["baselines"]:
        metrics = {name: METRICS_BY_KIND[spec.kind] for name, spec in parts["specs"].items()}
        results["delta_m"] = delta_m(results["test"], parts["baselines"], metrics)


def learning_rate(config: Mapping[str, Any]) -> float:
    value = config["optimizer"].get("learning_rate", float("nan"))
    return float(value) if isinstance(value, (int, float)) else float("nan")


def train(
    config: Mapping[str, Any],
    *,
    workdir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    json_log: bool = False,
) -> dict[str, Any]:
    """Train (or resume) the run in ``workdir`` as ``config`` says; return its results."""
    parts = prepare(config)
    config, mesh, model, iterator = parts["config"], parts["mesh"], parts["model"], parts["iterator"]
    run_dir = Path(workdir)
    resume = check_run_dir(run_dir, config, overwrite)
    prepare_run_dir(run_dir, config, overwrite, resume)

    state = create_train_state(parts["params"], parts["optimizer"], parts["aggregator"], len(model.tasks), config["seed"])
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=config["checkpoint"]["keep"])
    best = BestTracker(config["best_metric"])
    restored = checkpointer.restore_latest(state) if resume else None
    if restored is not None:
        _, state, extra = restored
        iterator.set_state(extra["data"])
        best = BestTracker.from_json(extra["best"])
    start_step = int(state.step)
    state = replicate(state, mesh)
    step_fn = make_train_step(
        model, parts["aggregator"], parts["optimizer"], mesh, mode=config["mode"],
        gradient_stats=config["gradient_stats"], jacobian_chunk=config["jacobian_chunk"] or None,
    )
    evaluator = make_evaluator(model, parts["specs"], mesh)
    logger = MetricsLogger(run_dir, echo=stdout_echo(json_log))
    logger.write(start_step, "run", {}, event="resumed" if restored is not None else "started",
                 devices=f"{mesh.size} x {jax.devices()[0].device_kind}")

    def extra() -> dict:
        return {"data": iterator.get_state(), "best": best.to_json()}

    saved = {"step": start_step if restored is not None else None}

    def save(step: int, state, score: float | None = None) -> None:
        if saved["step"] != step:  # a step is saved once (SIGTERM right after a periodic save)
            checkpointer.save(step, state, extra(), score=score)
            saved["step"] = step

    def evaluate_and_save(step: int, state) -> dict:
        results = run_evaluation(parts, evaluator, state.params, config["eval_split"])
        improved = best.update(results, step)
        logger.write(step, config["eval_split"], eval_scalars(results), best=improved)
        save(step, state, score=best.score(best.value) if improved else None)
        return results

    task_names = model.task_names
    flag = StopFlag()
    bar = tqdm(total=config["steps"], initial=start_step, disable=not progress, unit="step", dynamic_ncols=True)
    first_losses, previous, step = None, None, start_step
    started, window_start, window_step = time.perf_counter(), time.perf_counter(), start_step
    validation = None
    try:
        with sigterm_sets(flag):
            while step < config["steps"] and not flag.raised:
                state, metrics = step_fn(state, next(iterator))
                step += 1
                bar.update(1)
                if config["nonfinite"] == "stop" and previous is not None:
                    check_finite_losses(np.asarray(jax.device_get(previous["loss"])), task_names, step - 1)
                previous = metrics
                if step == start_step + 1 or step % config["log_every"] == 0 or step == config["steps"]:
                    host = jax.device_get(metrics)
                    if config["nonfinite"] == "stop":
                        check_finite_losses(np.asarray(host["loss"]), task_names, step)
                    first_losses = host["loss"] if first_losses is None else first_losses
                    now = time.perf_counter()
                    rate = (step - window_step) * config["batch_size"] / max(now - window_start, 1e-9)
                    window_start, window_step = now, step
                    scalars = step_scalars(host, task_names)
                    scalars.update(learning_rate=learning_rate(config), examples_per_second=rate,
                                   skipped_updates=float(skipped_updates(state.opt_state)))
                    logger.write(step, "train", scalars)
                    bar.set_postfix({n: f"{v:.3f}" for n, v in zip(task_names, host["loss"])} | {"ex/s": f"{rate:.0f}"})
                if config["eval_every"] and step % config["eval_every"] == 0 and step < config["steps"]:
                    validation = evaluate_and_save(step, state)
                elif step % config["checkpoint"]["every"] == 0 and step < config["steps"]:
                    save(step, state)
            if config["nonfinite"] == "stop" and previous is not None:
                check_finite_losses(np.asarray(jax.device_get(previous["loss"])), task_names, step)
        jax.block_until_ready(state)
        seconds = time.perf_counter() - started
        bar.close()
        if flag.raised and step < config["steps"]:
            save(step, state)
            checkpointer.close()
            logger.write(step, "run", {}, event="preempted")
            logger.close()
            return {"preempted": True, "step": step, "run_dir": str(run_dir)}
        if step > start_step:
            validation = evaluate_and_save(step, state)
        else:  # a finished run started again: nothing new to save
            validation = run_evaluation(parts, evaluator, state.params, config["eval_split"])
        results = {
            "run_dir": str(run_dir),
            "step": step,
            "preempted": False,
            "validation": validation,
            "test": run_evaluation(parts, evaluator, state.params, config["test_split"]),
            "best": best.to_json(),
            "skipped_updates": int(skipped_updates(state.opt_state)),
            "first_train_loss": None if first_losses is None else dict(zip(task_names, map(float, first_losses))),
            "train_seconds": seconds,
            "examples_per_second": (step - start_step) * config["batch_size"] / max(seconds, 1e-9),
            "devices": f"{mesh.size} x {jax.devices()[0].device_kind}",
        }
        add_delta_m(results, parts)
        logger.write(step, config["test_split"], eval_scalars(results["test"]), event="finished")
        (run_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return results
    finally:
        bar.close()
        checkpointer.close()
        logger.close()


def evaluate_run(workdir: str | Path, split: str, which: str = "best") -> dict[str, Any]:
    """Metrics of a saved run on ``split``, from its best (or latest) checkpoint."""
    run_dir = Path(workdir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"--workdir {str(run_dir)!r} holds no config.json; pass the directory of a run made by `mtl-jax train`")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    parts = prepare(config)
    if split not in parts["data"].splits:
        raise ConfigError(f"--split {split!r} is not a split of {config['dataset']}; accepted values: {', '.join(sorted(parts['data'].splits))}")
    state = create_train_state(parts["params"], parts["optimizer"], parts["aggregator"], len(parts["model"].tasks), config["seed"])
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=config["checkpoint"]["keep"])
    try:
        restored = checkpointer.restore_latest(state)
        if restored is None:
            raise DataError(f"{run_dir / 'checkpoints'} holds no readable checkpoint; train the run first")
        step, state, extra = restored
        best_step = extra["best"].get("step")
        if which == "best" and best_step is not None and best_step != step and best_step in checkpointer.steps():
            state, extra = checkpointer.restore(best_step, state)
            step = best_step
    finally:
        checkpointer.close()
    evaluator = make_evaluator(parts["model"], parts["specs"], parts["mesh"])
    results = {"run_dir": str(run_dir), "step": int(step), "split": split,
               "test": run_evaluation(parts, evaluator, replicate(state, parts["mesh"]).params, split)}
    add_delta_m(results, parts)
    return results

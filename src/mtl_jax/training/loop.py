"""The training loop: config → data, model, step; feed batches; evaluate each task.

Python only feeds batches and, every ``log_every`` steps, reads the metrics back; the step
itself never waits for the host.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from mtl_jax.aggregators import REGISTRY as AGGREGATORS
from mtl_jax.aggregators import get_aggregator
from mtl_jax.config import ConfigError, choice
from mtl_jax.data.batches import epoch_batches, eval_batches
from mtl_jax.data.registry import DATASETS
from mtl_jax.models import MLPTrunk, build_model
from mtl_jax.training.evaluate import evaluate, make_eval_step
from mtl_jax.training.mesh import BatchShapeError, check_divisible, data_mesh, replicate
from mtl_jax.training.optimizers import make_optimizer
from mtl_jax.training.state import create_train_state
from mtl_jax.training.step import MODES, make_train_step

REQUIRED_KEYS = (
    "dataset", "dataset_options", "model", "aggregator", "mode", "optimizer",
    "batch_size", "eval_batch_size", "steps", "seed", "log_every",
)


def validate(config: dict[str, Any], mesh) -> None:
    """Reject a bad config before anything is loaded or compiled."""
    unknown = sorted(set(config) - set(REQUIRED_KEYS))
    missing = sorted(set(REQUIRED_KEYS) - set(config))
    if unknown or missing:
        raise ConfigError(
            f"config keys unknown: {unknown or 'none'}, missing: {missing or 'none'};"
            f" accepted keys: {', '.join(REQUIRED_KEYS)}"
        )
    choice(config, "dataset", DATASETS)
    choice(config, "aggregator", AGGREGATORS)
    choice(config, "mode", MODES)
    for key in ("batch_size", "eval_batch_size", "steps", "log_every"):
        if not isinstance(config[key], int) or config[key] <= 0:
            raise ConfigError(f"config key {key!r} must be a positive integer, got {config[key]!r}")
    for key in ("batch_size", "eval_batch_size"):
        try:
            check_divisible(config[key], mesh)
        except BatchShapeError as error:
            raise ConfigError(f"config key {key!r}: {error}") from error


def _epochs(split, batch_size: int, rng: np.random.Generator):
    while True:
        yield from epoch_batches(split, batch_size, rng)


def train(config: dict[str, Any], *, progress: bool = True) -> dict[str, Any]:
    """Train as ``config`` says; return the final per-task test metrics and run facts."""
    mesh = data_mesh()
    validate(config, mesh)
    dataset = DATASETS[config["dataset"]](config["seed"], **config["dataset_options"])
    rngs = nnx.Rngs(config["seed"])
    hidden = list(config["model"]["hidden"])
    trunk = MLPTrunk(dataset.input_features, hidden, input_key=dataset.input_key, rngs=rngs)
    model, params = build_model(trunk, hidden[-1], dataset.tasks, rngs)
    aggregator = get_aggregator(config["aggregator"])
    optimizer = make_optimizer(config["optimizer"])
    state = replicate(create_train_state(params, optimizer, aggregator, len(dataset.tasks), config["seed"]), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, mode=config["mode"])

    batches = _epochs(dataset.splits["train"], config["batch_size"], np.random.default_rng(config["seed"]))
    started = time.perf_counter()
    bar = tqdm(range(config["steps"]), disable=not progress, unit="step", dynamic_ncols=True)
    first_losses = None
    for index in bar:
        state, metrics = step(state, next(batches))
        if index == 0 or (index + 1) % config["log_every"] == 0:
            losses = jax.device_get(metrics["loss"])
            first_losses = losses if first_losses is None else first_losses
            rate = (index + 1) * config["batch_size"] / (time.perf_counter() - started)
            bar.set_postfix({t.name: f"{l:.3f}" for t, l in zip(dataset.tasks, losses)} | {"ex/s": f"{rate:.0f}"})
    jax.block_until_ready(state)
    seconds = time.perf_counter() - started

    eval_step = make_eval_step(model, mesh)
    test = evaluate(eval_step, state.params, eval_batches(dataset.splits["test"], config["eval_batch_size"]), mesh)
    return {
        "test": test,
        "first_train_loss": dict(zip(model.task_names, map(float, first_losses))),
        "train_seconds": seconds,
        "examples_per_second": config["steps"] * config["batch_size"] / seconds,
        "devices": f"{mesh.size} × {jax.devices()[0].device_kind}",
    }

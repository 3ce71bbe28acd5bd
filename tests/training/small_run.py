"""A tiny MultiMNIST experiment for trainer tests: seconds per run on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "multi_mnist_pcgrad.py"
TINY = {
    "dataset_options.num_train": 600,
    "dataset_options.num_test": 200,
    "model.hidden": 16,
    "model.num_layers": 1,
    "batch_size": 32,
    "eval_batch_size": 100,
    "steps": 12,
    "log_every": 4,
    "eval_every": 0,
    "checkpoint.every": 4,
}


def overrides(**changes) -> list[str]:
    """``--set`` arguments of TINY updated with ``changes`` (dots as double underscores)."""
    values = dict(TINY)
    values.update({key.replace("__", "."): value for key, value in changes.items()})
    return [f"{key}={value!r}" for key, value in values.items()]


def tiny_config(**changes):
    """The tiny experiment as a checked :class:`~mtl_jax.config.RunConfig`."""
    from mtl_jax.config import load_config, parse  # noqa: PLC0415

    return parse(load_config(CONFIG), overrides(**changes))


def train_args(workdir: Path, *extra: str, **changes) -> list[str]:
    """``mtl-jax`` arguments that train the tiny experiment in ``workdir``."""
    sets = [x for item in overrides(**changes) for x in ("--set", item)]
    return ["train", "--config", str(CONFIG), "--workdir", str(workdir), "--quiet", *sets, *extra]

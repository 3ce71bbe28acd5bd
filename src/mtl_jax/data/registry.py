"""Datasets by name: each gives its splits, its tasks and the trunk's input."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from mtl_jax.data.multi_mnist import multi_mnist
from mtl_jax.models.classification import classification_task
from mtl_jax.models.task import Task


class Dataset(NamedTuple):
    splits: dict[str, dict[str, np.ndarray]]
    tasks: tuple[Task, ...]
    input_key: str
    input_features: int


def _multi_mnist(seed: int, **options: Any) -> Dataset:
    splits = multi_mnist(seed=seed, **options)
    tasks = (classification_task("left", 10), classification_task("right", 10))
    return Dataset(splits, tasks, "image", 28 * 28)


DATASETS: dict[str, Callable[..., Dataset]] = {"multi_mnist": _multi_mnist}

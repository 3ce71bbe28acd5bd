"""Opening a run's data: a :class:`~mtl_jax.data.opened.Dataset` with a validation split, and
the checks of the config against it.

``open_data(config)`` opens ``config.dataset`` with :func:`mtl_jax.data.datasets.open_dataset`
(prepared once under the data directory); a list of names is mixed by ``config.mixing``. A
dataset without a ``validation`` split (MultiMNIST and MultiFashion follow Sener & Koltun,
who have only train and test) gets one: the last ``dataset_options.validation_fraction``
(default 10 %) of its train split, whose order the builder already shuffled with the dataset
seed. Single and mixed datasets are read the same way (``train_batches(split, *,
batch_size, seed)``, ``eval_batches(split, *, batch_size)``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mtl_jax.config import RunConfig
from mtl_jax.config.checks import one_of
from mtl_jax.data import pipeline
from mtl_jax.data.datasets import open_dataset
from mtl_jax.data.mix import mix
from mtl_jax.data.opened import Dataset, OpenDataset
from mtl_jax.data.spec import DatasetSpec, TaskSpec
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND
from mtl_jax.training.run_dir import RESULTS_FILE

class Subset(Sequence):
    """Examples ``indices`` of a random-access source, itself random-access."""

    def __init__(self, source: Sequence[Any], indices: np.ndarray):
        self.source = source
        self.indices = np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.source[int(self.indices[index])]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        return pipeline.read_examples(self.source, self.indices[np.asarray(indices, int)])


def with_validation_split(opened: OpenDataset, fraction: float) -> OpenDataset:
    """``opened`` whose last ``fraction`` of ``train`` becomes ``validation``."""
    size = len(opened.splits["train"])
    cut = size - int(round(size * fraction))
    if cut <= 0 or cut >= size:
        raise ConfigError(
            f"dataset {opened.spec.name!r}: validation_fraction {fraction} of {size} train examples leaves an"
            " empty split; use a fraction that keeps examples on both sides"
        )
    parts = {"train": np.arange(cut), "validation": np.arange(cut, size)}
    splits = {**opened.splits, **{name: Subset(opened.splits["train"], idx) for name, idx in parts.items()}}
    lengths = opened.lengths
    if lengths is not None:
        lengths = {**lengths, **{name: lengths["train"][idx] for name, idx in parts.items()}}
    return dataclasses.replace(opened, splits=splits, lengths=lengths)


def open_one(config: RunConfig, name: str) -> OpenDataset:
    """Dataset ``name`` with its options, with a validation split."""
    opened = open_dataset(name, **config.options_of(name))
    if "validation" not in opened.splits:
        opened = with_validation_split(opened, config.validation_fraction(name))
    return opened


def open_data(config: RunConfig) -> Dataset:
    """``config.dataset`` with its options; several names are mixed by ``config.mixing``."""
    if not config.is_mixed:
        return open_one(config, config.dataset)
    opened = [open_one(config, name) for name in config.dataset_names]
    try:
        return mix(opened, config.mixing.strategy, config.mixing.temperature)
    except DataError as error:
        raise ConfigError(f"config key 'dataset' {list(config.dataset_names)}: {error}") from error


def select_tasks(config: RunConfig, spec: DatasetSpec, splits: Iterable[str]) -> tuple[TaskSpec, ...]:
    """The specs of the tasks to train; ConfigError for unknown tasks, splits, baselines or metric."""
    available = [task.name for task in spec.tasks]
    names = list(config.tasks) or available
    for name in names:
        one_of("tasks", name, available)
    splits = sorted(splits)
    one_of("eval_split", config.eval_split, splits)
    one_of("test_split", config.test_split, splits)
    for name in config.baselines:
        one_of("baselines", name, names)
    task, _, metric = config.best_metric.partition("/")
    if task != "mean":
        one_of("best_metric (task part)", task, ["mean", *names])
    kinds = [spec.task(task).kind] if task != "mean" else [spec.task(t).kind for t in names]
    metrics = sorted({"loss", *(m for kind in kinds for m in METRICS_BY_KIND[kind])})
    one_of("best_metric (metric part)", metric, metrics)
    return tuple(spec.task(name) for name in names)


def check_labels_fit(batch: Mapping[str, np.ndarray], tasks: Iterable[TaskSpec]) -> None:
    """DataError when a batch's labels do not fit a task's head (class ids out of range,
    multilabel width, shapes), before anything compiles."""
    for task in tasks:
        if task.label_key not in batch:
            raise DataError(f"task {task.name!r}: the batch has no labels under {task.label_key!r}; batch keys: {sorted(batch)}")
        labels = np.asarray(batch[task.label_key])
        mask = np.asarray(batch.get(task.mask_key, np.ones(labels.shape[: 2 if task.kind == "tagging" else 1], bool)), bool)
        if task.kind in ("classification", "tagging"):
            counted = labels[mask] if mask.shape == labels.shape else labels
            bad = counted[(counted < 0) | (counted >= task.num_outputs)]
            if bad.size:
                raise DataError(
                    f"task {task.name!r}: label {int(bad[0])} does not fit the head's {task.num_outputs} classes"
                    f" (accepted: 0..{task.num_outputs - 1}); fix the dataset's labels or the task's num_outputs"
                )
        elif task.kind == "multilabel" and (labels.ndim != 2 or labels.shape[1] != task.num_outputs):
            raise DataError(
                f"task {task.name!r}: multilabel targets of shape {labels.shape} do not fit the head's"
                f" {task.num_outputs} labels; expected (batch, {task.num_outputs})"
            )


def read_baselines(config: RunConfig) -> dict[str, dict[str, float]]:
    """{task: test metrics} from each baseline run's ``results.json``."""
    baselines = {}
    for task, run_dir in config.baselines.items():
        path = Path(run_dir) / RESULTS_FILE
        try:
            baselines[task] = json.loads(path.read_text(encoding="utf-8"))["test"][task]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"config key 'baselines.{task}': {path} has no test results for {task!r} ({type(error).__name__});"
                " name the run directory of a finished single-task run of that task"
            ) from error
    return baselines

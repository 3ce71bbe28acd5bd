"""Opening a dataset for the trainer: its spec, its splits and their batch streams.

The single place the trainer touches ``mtl_jax.data``. ``open_data(config)`` opens
``config["dataset"]`` with :func:`mtl_jax.data.datasets.open_dataset` (prepared once under
the data directory) and returns a :class:`TrainingData`. A dataset without a ``validation``
split (MultiMNIST and MultiFashion follow Sener & Koltun, who have only train and test)
gets one: the last ``dataset_options.validation_fraction`` (default 10 %) of its train
split, whose order the builder already shuffled with the dataset seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from mtl_jax.errors import ConfigError
from mtl_jax.data import pipeline
from mtl_jax.data.datasets import DATASETS, accepted_options, open_dataset
from mtl_jax.errors import DataError
from mtl_jax.data.mix import MixedDataset, mix
from mtl_jax.data.opened import OpenDataset
from mtl_jax.data.spec import DatasetSpec, TaskSpec

VALIDATION_FRACTION = 0.1


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
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"config key 'dataset_options.validation_fraction' must be in (0, 1), got {fraction!r}")
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


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """An opened dataset, or several mixed (:func:`mtl_jax.data.mix.mix`), as the loop reads it."""

    opened: OpenDataset | MixedDataset

    @property
    def spec(self) -> DatasetSpec:
        return self.opened.spec

    @property
    def splits(self) -> Mapping[str, Any]:
        """Split name -> source (mixed: the tuple of every dataset's source)."""
        if isinstance(self.opened, OpenDataset):
            return self.opened.splits
        names = set.intersection(*(set(d.splits) for d in self.opened.datasets))
        return {name: tuple(d.splits[name] for d in self.opened.datasets) for name in sorted(names)}

    def train_batches(self, split: str, global_batch_size: int, seed: int):
        """Endless shuffled batches of ``split`` (this process's slice), resumable."""
        return self.opened.train_batches(global_batch_size, seed, split)

    def eval_batches(self, split: str, batch_size: int, label_keys: Sequence[str]) -> Iterator[dict]:
        """Every example of ``split`` once, padding masked (``label_keys``: every task's)."""
        del label_keys  # the opened dataset masks the padding of every task it has
        if isinstance(self.opened, OpenDataset):
            return self.opened.eval_batches(split, batch_size)
        return (batch for _, batch in self.opened.eval_batches(split, batch_size))


def dataset_names() -> list[str]:
    """Every dataset the trainer can open."""
    return sorted(DATASETS)


def open_one(name: str, options: Mapping[str, Any], key: str) -> OpenDataset:
    """Dataset ``name`` with ``options`` (config key ``key``), with a validation split."""
    options = dict(options)
    fraction = options.pop("validation_fraction", VALIDATION_FRACTION)
    accepted = [*accepted_options(name), "validation_fraction"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"config key {key!r} for {name}: unknown options {unknown}; accepted: {', '.join(sorted(accepted))}")
    opened = open_dataset(name, **options)
    if "validation" not in opened.splits:
        opened = with_validation_split(opened, fraction)
    return opened


def open_data(config: Mapping[str, Any]) -> TrainingData:
    """``config["dataset"]`` with ``config["dataset_options"]``; a list of names is mixed by
    ``config["mixing"]`` (options then per dataset: ``dataset_options: {name: {...}}``)."""
    names, options = config["dataset"], config["dataset_options"]
    if isinstance(names, str):
        return TrainingData(open_one(names, options, "dataset_options"))
    opened = [open_one(name, options.get(name, {}), f"dataset_options.{name}") for name in names]
    mixing = config["mixing"]
    try:
        return TrainingData(mix(opened, mixing["strategy"], mixing["temperature"]))
    except DataError as error:
        raise ConfigError(f"config key 'dataset' {names}: {error}") from error


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

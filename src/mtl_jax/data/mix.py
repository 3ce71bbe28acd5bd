"""Tasks from several datasets in one model: each batch comes from one dataset.

Strategies (dataset ``d`` with ``N_d`` train examples, ``D`` datasets):

* ``proportional``: P(d) = N_d / Σ N (examples-proportional mixing);
* ``temperature``: P(d) ∝ N_d^{1/T} (temperature-scaled sampling, Arivazhagan et al. 2019,
  "Massively Multilingual NMT in the Wild"; T=1 is proportional, T→∞ uniform);
* ``round_robin``: step n uses dataset n mod D.

The dataset of step ``n`` is drawn from ``default_rng([seed, n, 2])``, so it is a pure
function of the seed and the step; each dataset keeps its own resumable
:class:`~mtl_jax.data.pipeline.BatchIterator` (seed ``[seed, d]``), and the mixed state is the
step plus theirs. A batch carries the union of all batch keys: the labels of the tasks of
the other datasets are zeros with masks False, so those tasks' loss totals and counts are 0
and their gradients vanish (the step divides by ``max(count, 1)``). Text datasets share one
joint vocabulary (:func:`mtl_jax.data.text.joint_vocabulary`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np

from mtl_jax.data import pipeline, text
from mtl_jax.errors import DataError
from mtl_jax.data.opened import OpenDataset
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec

Strategy = Literal["proportional", "temperature", "round_robin"]
STRATEGIES = ("proportional", "temperature", "round_robin")
MIX_FORMAT = "mtl_jax.mixed_batches/1"


def mixing_probabilities(sizes: Sequence[int], strategy: Strategy, temperature: float = 1.0) -> np.ndarray:
    """P(d) of each dataset for the sampling strategies (uniform for round-robin)."""
    sizes = np.asarray(sizes, np.float64)
    if strategy == "proportional":
        return sizes / sizes.sum()
    if strategy == "temperature":
        if temperature <= 0:
            raise DataError(f"mixing temperature must be positive, got {temperature}; fix: use e.g. 2 or 5")
        scaled = sizes ** (1.0 / temperature)
        return scaled / scaled.sum()
    if strategy == "round_robin":
        return np.full(len(sizes), 1.0 / len(sizes))
    raise DataError(f"unknown mixing strategy {strategy!r}; fix: use one of {STRATEGIES}")


def dataset_of_step(step: int, seed: int, strategy: Strategy, probabilities: np.ndarray) -> int:
    """Which dataset step ``step`` draws from."""
    if strategy == "round_robin":
        return step % len(probabilities)
    return int(np.random.default_rng([seed, step, 2]).choice(len(probabilities), p=probabilities))


def absent_label(task: TaskSpec, batch_size: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeros and an all-False mask shaped like ``task``'s labels."""
    if task.kind == "tagging":
        return np.zeros((batch_size, length), np.int32), np.zeros((batch_size, length), bool)
    if task.kind == "multilabel":
        return np.zeros((batch_size, task.num_outputs), np.float32), np.zeros(batch_size, bool)
    dtype = np.float32 if task.kind == "regression" else np.int32
    return np.zeros(batch_size, dtype), np.zeros(batch_size, bool)


def fill_absent(batch: dict[str, np.ndarray], tasks: Sequence[TaskSpec]) -> dict[str, np.ndarray]:
    """``batch`` plus zero labels, masks False, for each of ``tasks`` it does not carry, and
    an all-True mask for a carried label without one (every batch has the same keys)."""
    batch_size = len(next(iter(batch.values())))
    length = batch["tokens"].shape[1] if "tokens" in batch else 0
    out = dict(batch)
    for task in tasks:
        if task.label_key not in out:
            out[task.label_key], out[task.mask_key] = absent_label(task, batch_size, length)
        elif task.mask_key not in out:
            out[task.mask_key] = np.ones(absent_label(task, batch_size, length)[1].shape, bool)
    return out


@dataclasses.dataclass(frozen=True)
class MixedDataset:
    """Several opened datasets trained together; ``spec`` has the union of their tasks."""

    spec: DatasetSpec
    datasets: tuple[OpenDataset, ...]
    strategy: Strategy
    temperature: float

    def probabilities(self, split: str = "train") -> np.ndarray:
        return mixing_probabilities([len(d.split(split)) for d in self.datasets], self.strategy, self.temperature)

    @property
    def splits(self) -> Mapping[str, tuple[Any, ...]]:
        """Split name -> the tuple of every dataset's source, for the splits all of them have."""
        names = set.intersection(*(set(d.splits) for d in self.datasets))
        return {name: tuple(d.splits[name] for d in self.datasets) for name in sorted(names)}

    def train_batches(self, split: str, *, batch_size: int, seed: int, **kwargs: Any) -> MixedBatchIterator:
        """Endless mixed batches of ``split``; dataset ``i`` draws its own order from ``[seed, i]``."""
        iterators = [
            d.train_batches(split, batch_size=batch_size, seed=int(np.random.default_rng([seed, i]).integers(2**31)), **kwargs)
            for i, d in enumerate(self.datasets)
        ]  # fmt: skip
        return MixedBatchIterator(self, iterators, seed, self.probabilities(split))

    def eval_batches(self, split: str, *, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Every dataset's ``split`` in turn, each batch padded to the union of keys."""
        for dataset in self.datasets:
            for batch in dataset.eval_batches(split, batch_size=batch_size):
                yield fill_absent(batch, self.spec.tasks)


class MixedBatchIterator(Iterator[dict[str, np.ndarray]]):
    """Endless mixed batches; ``get_state``/``set_state`` as :class:`pipeline.BatchIterator`."""

    def __init__(self, mixed: MixedDataset, iterators: Sequence[pipeline.BatchIterator], seed: int, probabilities: np.ndarray):
        self.mixed = mixed
        self.iterators = list(iterators)
        self.seed = seed
        self.probabilities = probabilities
        self.step = 0

    def __iter__(self) -> MixedBatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        source = dataset_of_step(self.step, self.seed, self.mixed.strategy, self.probabilities)
        batch = next(self.iterators[source])
        self.step += 1
        return fill_absent(batch, self.mixed.spec.tasks)

    def get_state(self) -> dict[str, Any]:
        return {
            "format": MIX_FORMAT,
            "seed": self.seed,
            "step": self.step,
            "strategy": self.mixed.strategy,
            "datasets": [d.spec.name for d in self.mixed.datasets],
            "iterators": [iterator.get_state() for iterator in self.iterators],
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        current = self.get_state()
        for key in ("format", "seed", "strategy", "datasets"):
            if not isinstance(state, Mapping) or state.get(key) != current[key]:
                found = state.get(key) if isinstance(state, Mapping) else None
                raise DataError(
                    f"mixed data iterator state has {key}={found!r}, this run has {current[key]!r};"
                    " fix: resume with the same datasets, seed and strategy, or start afresh"
                )
        for iterator, saved in zip(self.iterators, state["iterators"]):
            iterator.set_state(saved)
        self.step = int(state["step"])


def with_joint_vocabulary(datasets: Sequence[OpenDataset]) -> tuple[OpenDataset, ...]:
    """Text datasets re-encoded with one vocabulary (the union, first dataset's ids first)."""
    vocabulary = tuple(text.joint_vocabulary([d.vocabulary for d in datasets]))
    out = []
    for d in datasets:
        collate = d.collate.with_encoder(text.TokenEncoder(vocabulary, d.collate.encoder.lowercase))
        spec = dataclasses.replace(d.spec, input=dataclasses.replace(d.spec.input, vocab_size=len(vocabulary)))
        buckets = tuple(sorted({b for x in datasets for b in (x.buckets or ())}))
        out.append(dataclasses.replace(d, spec=spec, collate=collate, vocabulary=vocabulary, buckets=buckets))
    return tuple(out)


def mix(datasets: Sequence[OpenDataset], strategy: Strategy = "proportional", temperature: float = 1.0) -> MixedDataset:
    """One model's batches from several datasets with the same kind of input.

    Task names must be distinct across datasets (they are the batch keys).
    """
    if len(datasets) < 1:
        raise DataError("mix needs at least one dataset")
    mixing_probabilities([1] * len(datasets), strategy, temperature)  # validates the strategy
    inputs = {(d.spec.input.kind, d.spec.input.key) for d in datasets}
    if len(inputs) != 1:
        raise DataError(f"mixed datasets must share one input kind and key, got {sorted(inputs)}; fix: mix only text with text, etc.")
    tasks = [task for d in datasets for task in d.spec.tasks]
    names = [task.name for task in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"task names {duplicates} occur in several mixed datasets; fix: select distinct tasks")
    if datasets[0].spec.input.kind == "text":
        datasets = with_joint_vocabulary(datasets)
    input_spec: InputSpec = datasets[0].spec.input
    spec = DatasetSpec("+".join(d.spec.name for d in datasets), input_spec, tuple(tasks))
    return MixedDataset(spec, tuple(datasets), strategy, temperature)


def select_tasks(dataset: OpenDataset, names: Sequence[str]) -> OpenDataset:
    """``dataset`` with only the tasks ``names`` (the others' labels are dropped from batches)."""
    tasks = tuple(dataset.spec.task(name) for name in names)
    dropped = {k for t in dataset.spec.tasks if t.name not in names for k in (t.label_key, t.mask_key)}
    spec = dataclasses.replace(dataset.spec, tasks=tasks)
    return dataclasses.replace(dataset, spec=spec, collate=DropKeys(dataset.collate, frozenset(dropped)))


@dataclasses.dataclass(frozen=True)
class DropKeys:
    """A collate without some batch keys."""

    collate: Any
    keys: frozenset[str]

    def __call__(self, examples: Sequence[Any], **kwargs: Any) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.collate(examples, **kwargs).items() if k not in self.keys}

    def with_encoder(self, encoder: text.TokenEncoder) -> DropKeys:
        return dataclasses.replace(self, collate=self.collate.with_encoder(encoder))

    @property
    def encoder(self) -> text.TokenEncoder:
        return self.collate.encoder

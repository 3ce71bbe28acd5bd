"""An opened dataset: its spec, its split sources, and how to batch them.

``OpenDataset`` bundles what the trainer needs from :func:`mtl_jax.data.datasets.open_dataset`:
the :class:`~mtl_jax.data.spec.DatasetSpec`, split name -> random-access source, and the
``collate`` turning a list of stored examples into a batch following the spec's batch
conventions. Text datasets also carry per-split sequence ``lengths`` and the bucket lengths,
so :meth:`OpenDataset.train_batches` buckets by length.

:class:`Dataset` is what a trainer reads: the same protocol for one opened dataset and for
several mixed ones (:class:`mtl_jax.data.mix.MixedDataset`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np

from mtl_jax.data import pipeline
from mtl_jax.data.columns import ColumnSource, materialize
from mtl_jax.errors import DataError
from mtl_jax.data.spec import DatasetSpec
from mtl_jax.types import HostBatch


class ResumableBatches(Protocol):
    """An endless batch iterator whose position can be saved (JSON) and restored."""

    def __next__(self) -> HostBatch: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: Mapping[str, Any]) -> None: ...


class Dataset(Protocol):
    """The one road for batches, for single and mixed datasets alike.

    ``train_batches`` yields this process's slice of each global batch, shuffled and
    endless, resumable with ``get_state``/``set_state``; ``eval_batches`` yields every
    example of a split once, in batches of exactly ``batch_size`` whose padding rows have
    ``example_mask`` and every label mask False.
    """

    spec: DatasetSpec

    @property
    def splits(self) -> Mapping[str, Any]: ...

    def train_batches(self, split: str, *, batch_size: int, seed: int) -> ResumableBatches: ...

    def eval_batches(self, split: str, *, batch_size: int) -> Iterator[HostBatch]: ...


@dataclasses.dataclass(frozen=True)
class OpenDataset:
    """A dataset ready to batch.

    Attributes:
      spec: input and tasks.
      splits: split name (``train``, ``validation``, ``test``) -> random-access source.
      collate: ``collate(examples)`` (or ``collate(examples, length=L)`` for text) -> batch.
      lengths: text only: split -> int32 sequence length of every example.
      buckets: text only: the padded lengths (see :mod:`mtl_jax.data.bucketing`).
      vocabulary: text only: token of each id.
      text_file: text only: the vocabulary file ``lengths`` were read from (named in errors).
    """

    spec: DatasetSpec
    splits: Mapping[str, Sequence[Any]]
    collate: pipeline.Collate
    lengths: Mapping[str, np.ndarray] | None = None
    buckets: tuple[int, ...] | None = None
    vocabulary: tuple[str, ...] = ()
    text_file: str | None = None
    _columns: dict[str, ColumnSource] = dataclasses.field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def label_keys(self) -> tuple[str, ...]:
        return tuple(task.label_key for task in self.spec.tasks)

    def split(self, name: str) -> Sequence[Any]:
        if name not in self.splits:
            raise DataError(f"{self.spec.name}: no split {name!r}; fix: use one of {sorted(self.splits)}")
        return self.splits[name]

    @property
    def max_length(self) -> int | None:
        """Text: the longest bucket (the padded length of evaluation batches); else None."""
        return None if self.buckets is None else self.buckets[-1]

    def columns(self, split: str) -> ColumnSource:
        """``split`` decoded and collated once (cached): batches become array indexing. Every
        record is read here, so a corrupt file is a DataError now; text lengths are checked
        against the collated sequences."""
        if split not in self._columns:
            columns = materialize(self.split(split), self.collate, pipeline.read_examples, self.max_length)
            if self.lengths is not None:
                self._check_lengths(split, columns)
            self._columns[split] = columns
        return self._columns[split]

    def _check_lengths(self, split: str, columns: ColumnSource) -> None:
        """DataError unless the saved sequence lengths of ``split`` are those of its examples
        (wrong ones would bucket, and so cut, sentences silently)."""
        mask = columns.arrays.get(f"{self.spec.input.key}_mask")
        if mask is None:
            return
        found, saved = mask.sum(axis=1), np.asarray(self.lengths[split])
        if found.shape != saved.shape or np.any(found != saved):
            wrong = int(np.sum(found != saved)) if found.shape == saved.shape else abs(len(found) - len(saved))
            where = self.text_file or "the vocabulary file beside the prepared data"
            raise DataError(
                f"{self.spec.name}: {wrong} saved sequence lengths of split {split!r} in {where} differ from its"
                f" examples; fix: delete {where} (it is rebuilt from the train split) and run the same command again"
            )

    def train_batches(self, split: str, *, batch_size: int, seed: int, **kwargs: Any) -> pipeline.BatchIterator:
        """:func:`mtl_jax.data.pipeline.train_batches` over ``split`` (pre-collated, bucketed);
        ``batch_size`` is global; ``kwargs``: the pipeline's process and read options."""
        lengths = None if self.lengths is None else self.lengths[split]
        return pipeline.train_batches(
            self.columns(split), batch_size, seed, collate=self.collate, lengths=lengths,
            buckets=self.buckets, **kwargs,
        )  # fmt: skip

    def eval_batches(self, split: str, *, batch_size: int) -> Iterator[HostBatch]:
        """:func:`mtl_jax.data.pipeline.eval_batches` of ``split``; text padded to the largest bucket."""
        return pipeline.eval_batches(
            self.columns(split), batch_size, self.collate, label_keys=self.label_keys, length=self.max_length
        )

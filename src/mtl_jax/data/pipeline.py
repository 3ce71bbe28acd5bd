"""Deterministic, resumable batches: ``train_batches`` (shuffled, endless) and ``eval_batches``.

Order. Epoch ``e`` visits the examples in the permutation ``default_rng([seed, e])`` of
``range(len(source))`` and cuts it into ``len(source) // global_batch_size`` global batches
(the trailing partial batch of each epoch is dropped, so shapes stay static; a different
part is dropped each epoch). With ``lengths`` (text) the epoch's batches come from
:func:`mtl_jax.data.bucketing.pooled_batches` instead: similar lengths together, padded to
a few bucket lengths. Global batch ``n`` of the stream is therefore a pure function of
``(seed, n)``: nothing else is needed to resume.

Hosts. Process ``p`` of ``P`` reads only its contiguous slice ``[p·B/P, (p+1)·B/P)`` of
each global batch (``B`` = ``global_batch_size``); the trainer places it on the mesh with
:func:`mtl_jax.parallel.shard_batch`. Concatenating the slices of all processes gives
the single-process global batch. The padded length of a text batch is chosen from the
whole global batch, so every process pads alike.

Reading. Batches are read and collated by a ``grain`` dataset with a few prefetching
threads (``grain.ReadOptions``); the source is any random-access sequence of example dicts
(a TFDS ``array_record`` data source, or a list), or a pre-collated
:class:`~mtl_jax.data.columns.ColumnSource`, from which a batch is one indexing per array.

State. ``get_state()`` is a JSON-serialisable dict (format, seed, step, epoch, batch and
example index within the epoch, sizes); ``set_state`` on an iterator over the same data,
seed and batch size continues exactly where the saved one stopped.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence

import grain
import numpy as np

from mtl_jax.types import HostBatch, mask_key

from mtl_jax.data import bucketing
from mtl_jax.errors import DataError

Example = Mapping[str, Any]
Collate = Callable[..., HostBatch]
STATE_FORMAT = "mtl_jax.train_batches/1"
INPUT_MASK_KEYS = frozenset({"tokens_mask", "atoms_mask"})
EXAMPLE_MASK = "example_mask"
DEFAULT_READ = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)


def stack_examples(examples: Sequence[Example]) -> HostBatch:
    """Default collate: stack every numeric or boolean field (strings and ragged fields,
    which need a dataset-specific collate, are left out)."""
    batch: HostBatch = {}
    for key, value in examples[0].items():
        if np.asarray(value).dtype.kind not in "biuf":
            continue
        try:
            batch[key] = np.stack([np.asarray(example[key]) for example in examples])
        except ValueError:
            continue  # ragged: needs padding, i.e. the dataset's own collate
    return batch


def read_examples(source: Sequence[Example], indices: np.ndarray) -> list[Example]:
    """The examples at ``indices``, in one ``__getitems__`` call where the source has it."""
    keys = [int(i) for i in indices]
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems(keys))
    return [source[key] for key in keys]


def read_batch(source: Sequence[Example], collate: Collate, indices: np.ndarray, length: int | None) -> HostBatch:
    """The batch of ``indices``: one indexing of a pre-collated source (one with a
    ``read_batch`` method, :mod:`mtl_jax.data.columns`), else read + ``collate``."""
    read_columns = getattr(source, "read_batch", None)
    if read_columns is not None:
        return read_columns(indices, length)
    examples = read_examples(source, indices)
    return collate(examples) if length is None else collate(examples, length=length)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the examples."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


class BatchPlan:
    """Which examples make global batch ``n`` and which part of it this process reads."""

    def __init__(
        self,
        num_examples: int,
        global_batch_size: int,
        seed: int,
        process_index: int,
        process_count: int,
        lengths: np.ndarray | None = None,
        buckets: Sequence[int] | None = None,
    ):
        self.num_examples = num_examples
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.local_batch_size = global_batch_size // process_count
        self.batches_per_epoch = num_examples // global_batch_size
        self.lengths = None if lengths is None else np.asarray(lengths)
        if self.lengths is not None and buckets is None:
            buckets = bucketing.default_buckets(int(self.lengths.max(initial=1)))
        self.buckets = None if buckets is None else tuple(int(b) for b in buckets)
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """(batches_per_epoch, global_batch_size) example indices of an epoch (cached)."""
        with self._lock:
            batches = self._cache.get(epoch)
            if batches is None:
                batches = self._make_epoch(epoch)
                self._cache = {e: b for e, b in self._cache.items() if e >= epoch - 1}
                self._cache[epoch] = batches
            return batches

    def _make_epoch(self, epoch: int) -> np.ndarray:
        order = epoch_permutation(self.num_examples, self.seed, epoch)
        if self.lengths is None:
            kept = order[: self.batches_per_epoch * self.global_batch_size]
            return kept.reshape(self.batches_per_epoch, self.global_batch_size)
        rng = np.random.default_rng([self.seed, epoch, 1])
        return bucketing.pooled_batches(order, self.lengths, self.global_batch_size, rng)

    def global_indices(self, step: int) -> np.ndarray:
        """Example indices of global batch ``step`` (all processes)."""
        epoch, batch = divmod(step, self.batches_per_epoch)
        return self.epoch_batches(epoch)[batch]

    def local_indices(self, step: int) -> np.ndarray:
        """This process's contiguous slice of global batch ``step``."""
        start = self.process_index * self.local_batch_size
        return self.global_indices(step)[start : start + self.local_batch_size]

    def padded_length(self, step: int) -> int | None:
        """The bucket length of global batch ``step`` (None without ``lengths``)."""
        if self.lengths is None or self.buckets is None:
            return None
        longest = int(self.lengths[self.global_indices(step)].max())
        return bucketing.bucket_length(longest, self.buckets)


class BatchIterator(Iterator[HostBatch]):
    """Endless iterator of this process's slices of the global batches, resumable.

    ``next(it)`` returns a dict of NumPy arrays (local batch axis first);
    ``get_state()`` / ``set_state(state)`` save and restore the position.
    """

    def __init__(
        self,
        source: Sequence[Example],
        plan: BatchPlan,
        collate: Collate,
        read_options: grain.ReadOptions = DEFAULT_READ,
    ):
        self.source = source
        self.plan = plan
        self.collate = collate
        self.read_options = read_options
        self._dataset = grain.MapDataset.range(0, sys.maxsize).map(self.load_batch)
        self._step = 0
        self._iterator = self._start(0)

    def load_batch(self, step: int) -> HostBatch:
        """Read and collate this process's slice of global batch ``step``."""
        return read_batch(self.source, self.collate, self.plan.local_indices(step), self.plan.padded_length(step))

    def _start(self, step: int) -> Iterator[HostBatch]:
        iterator = iter(self._dataset.to_iter_dataset(self.read_options))
        if step:
            iterator.set_state({"next_index": step})
        return iterator

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> HostBatch:
        batch = next(self._iterator)
        self._step += 1
        return batch

    @property
    def step(self) -> int:
        """Global batches consumed so far."""
        return self._step

    def get_state(self) -> dict[str, Any]:
        """The position, as a JSON-serialisable dict."""
        epoch, batch = divmod(self._step, self.plan.batches_per_epoch)
        return {
            "format": STATE_FORMAT,
            "seed": self.plan.seed,
            "step": self._step,
            "epoch": epoch,
            "batch_in_epoch": batch,
            "index_in_epoch": batch * self.plan.global_batch_size,
            "num_examples": self.plan.num_examples,
            "global_batch_size": self.plan.global_batch_size,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a position saved by :meth:`get_state` (same data, seed and batch)."""
        check_state(state, self.get_state())
        self._step = int(state["step"])
        self._iterator = self._start(self._step)


def check_state(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise :class:`DataError` unless ``saved`` was written for the same stream."""
    if not isinstance(saved, Mapping) or saved.get("format") != STATE_FORMAT:
        found = saved.get("format") if isinstance(saved, Mapping) else type(saved).__name__
        raise DataError(
            f"data iterator state has format {found!r}, this code reads {STATE_FORMAT!r}; fix:"
            " resume from a checkpoint written by this version, or start the run afresh"
        )
    for key in ("seed", "num_examples", "global_batch_size"):
        if saved.get(key) != current[key]:
            raise DataError(
                f"data iterator state was saved with {key}={saved.get(key)!r} but this run has"
                f" {key}={current[key]!r}; fix: resume with the same dataset, seed and global"
                " batch size, or start the run afresh"
            )
    if not isinstance(saved.get("step"), int) or saved["step"] < 0:
        raise DataError(f"data iterator state has an invalid step {saved.get('step')!r}; fix: start afresh")


def resolve_processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """(index, count) of this process, from JAX when not given."""
    if process_index is None or process_count is None:
        import jax  # noqa: PLC0415 - only needed when the caller does not say

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    return int(process_index), int(process_count)


def train_batches(
    source: Sequence[Example],
    global_batch_size: int,
    seed: int,
    *,
    collate: Collate = stack_examples,
    process_index: int | None = None,
    process_count: int | None = None,
    lengths: np.ndarray | None = None,
    buckets: Sequence[int] | None = None,
    read_options: grain.ReadOptions = DEFAULT_READ,
) -> BatchIterator:
    """Endless shuffled batches of ``source``: this process's slice of each global batch.

    Args:
      source: random-access sequence of example dicts.
      global_batch_size: examples per step over all processes (a multiple of the
        process count, at most ``len(source)``).
      seed: fixes every epoch's order.
      collate: ``examples -> batch``; with ``lengths`` it is called as
        ``collate(examples, length=L)`` with the bucket length ``L`` of the global batch.
      process_index, process_count: this process and their number (default: JAX's).
      lengths: optional per-example sequence lengths, to bucket (see
        :mod:`mtl_jax.data.bucketing`).
      buckets: bucket lengths (default: :func:`~mtl_jax.data.bucketing.default_buckets`).
      read_options: grain's threads and prefetch buffer.
    """
    process_index, process_count = resolve_processes(process_index, process_count)
    if len(source) == 0:
        raise DataError("train_batches: the source is empty; fix: check the split and the data directory")
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise DataError(
            f"global batch size {global_batch_size} is not a positive multiple of the"
            f" {process_count} processes; fix: choose a multiple of {process_count}"
        )
    if global_batch_size > len(source):
        raise DataError(
            f"global batch size {global_batch_size} exceeds the {len(source)} examples of the"
            f" split; fix: use a batch size of at most {len(source)}"
        )
    if not 0 <= process_index < process_count:
        raise DataError(f"process index {process_index} is not in [0, {process_count})")
    if lengths is not None and len(lengths) != len(source):
        raise DataError(f"{len(lengths)} lengths for {len(source)} examples; fix: one length per example")
    plan = BatchPlan(len(source), global_batch_size, seed, process_index, process_count, lengths, buckets)
    return BatchIterator(source, plan, collate, read_options)


def pad_rows(batch: HostBatch, valid: np.ndarray, label_keys: Sequence[str] | None) -> HostBatch:
    """Mark padded rows: ``example_mask`` and every label mask False where not ``valid``."""
    if label_keys is None:
        label_keys = [k for k in batch if mask_key(k) in batch and mask_key(k) not in INPUT_MASK_KEYS]
    out = dict(batch)
    for key in label_keys:
        mask = np.asarray(out.get(mask_key(key), np.ones(out[key].shape, bool)), bool)
        row_valid = valid.reshape(valid.shape + (1,) * (mask.ndim - 1))
        out[mask_key(key)] = mask & row_valid
    out[EXAMPLE_MASK] = valid
    return out


def eval_batches(
    source: Sequence[Example],
    batch_size: int,
    collate: Collate = stack_examples,
    *,
    label_keys: Sequence[str] | None = None,
    length: int | None = None,
) -> Iterator[HostBatch]:
    """Every example once, in order, in batches of exactly ``batch_size``.

    The last batch is filled with copies of the first example whose label masks (those of
    ``label_keys``; default: every key with a ``<key>_mask`` that is not an input mask) and
    ``example_mask`` are False, so shapes stay static and padding never counts. Labels
    without a mask get one. With ``length`` the collate is called with ``length=length``
    (one padded length for the whole evaluation: one compilation).
    """
    if len(source) == 0:
        raise DataError("eval_batches: the source is empty; fix: check the split and the data directory")
    for start in range(0, len(source), batch_size):
        index = np.arange(start, start + batch_size)
        valid = index < len(source)
        batch = read_batch(source, collate, np.where(valid, index, 0), length)
        yield pad_rows(batch, valid, label_keys)

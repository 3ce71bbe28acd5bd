"""Augmented train batches: a resumable batch stream with an augmentation applied to each batch.

:class:`AugmentedBatches` wraps the stream of :func:`mtl_jax.data.pipeline.train_batches`
(or a mixed one, :mod:`mtl_jax.data.mix`) and passes global batch ``n`` through
``augment(batch, seed, n, first_index)`` of :mod:`mtl_jax.data.augment`, compiled once per
batch shape by :func:`compile_augmentation` (keep the compiled function: each new one
compiles again). ``n`` is read from the wrapped stream's position, and ``first_index`` is the
global index of this process's first example (process ``p`` of equal slices of ``b`` rows:
``p·b``). So an augmented batch is a pure function of ``(seed, n)`` and the batch, the same
for any number of processes, and a stream restored with ``set_state`` continues with
exactly the augmented batches an uninterrupted one would have produced: the saved state is
the wrapped stream's own. Batches stay host NumPy arrays with their dtypes.

Only training uses this: evaluation batches are read from the dataset, never from here.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from mtl_jax.data.augment import Augmentation
from mtl_jax.data.opened import ResumableBatches
from mtl_jax.types import Batch, HostBatch

CompiledAugmentation = Callable[[Batch, Any, Any], Batch]


def compile_augmentation(augment: Augmentation, seed: int) -> CompiledAugmentation:
    """``apply(batch, step, first_index) = augment(batch, seed, step, first_index)``, jitted
    (``step`` and ``first_index`` traced, so one compilation serves every step)."""
    return jax.jit(lambda batch, step, first_index: augment(batch, seed, step, first_index))


class AugmentedBatches(Iterator[HostBatch]):
    """``batches`` with an augmentation applied; ``get_state``/``set_state`` are the wrapped stream's.

    Args:
      batches: a resumable stream whose ``get_state()["step"]`` is the index of the next batch.
      apply: ``apply(batch, step, first_index) -> batch``, from :func:`compile_augmentation`.
      process_index: this process (its slice starts at ``process_index · rows``).
    """

    def __init__(self, batches: ResumableBatches, apply: CompiledAugmentation, process_index: int = 0):
        self.batches = batches
        self.apply = apply
        self.process_index = int(process_index)

    def __iter__(self) -> AugmentedBatches:
        return self

    @property
    def step(self) -> int:
        """Global batches consumed so far."""
        return int(self.batches.get_state()["step"])

    def __next__(self) -> HostBatch:
        step = self.step
        batch = next(self.batches)
        rows = len(next(iter(batch.values())))
        augmented = jax.device_get(self.apply(batch, np.uint32(step), np.uint32(self.process_index * rows)))
        return {key: np.asarray(value).astype(np.asarray(batch[key]).dtype, copy=False) for key, value in augmented.items()}

    def get_state(self) -> dict[str, Any]:
        return self.batches.get_state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.batches.set_state(state)

"""A split decoded and collated once, kept as arrays: batches by indexing.

Reading a TFDS ``array_record`` source decodes every example in Python (about 25k
examples/s on one CPU core), slower than a small model's train step consumes on an
accelerator. The datasets here are small (the largest, MultiFashion, is 188 MB as float32),
so :func:`materialize` runs the dataset's collate over the whole split once and a batch is
then one fancy-indexing per array. Text is stored padded to the longest bucket; a batch is
sliced back to its own bucket length, so the batches are identical to collating the same
examples directly.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mtl_jax.types import HostBatch



class ColumnSource:
    """Random-access examples stored column-wise; ``read_batch`` replaces read + collate.

    Attributes:
      arrays: key -> array with the example axis first.
      length: the padded sequence length of the stored text arrays (None: no sequences).
    """

    def __init__(self, arrays: HostBatch, length: int | None = None):
        sizes = {key: len(value) for key, value in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"columns of different lengths: {sizes}")
        self.arrays = arrays
        self.length = length
        self.sequence_keys = frozenset(
            key for key, value in arrays.items() if length is not None and value.ndim >= 2 and value.shape[1] == length
        )

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def read_batch(self, indices: np.ndarray, length: int | None = None) -> HostBatch:
        """The collated batch of ``indices``; sequences cut to ``length`` when given."""
        batch = {key: value[indices] for key, value in self.arrays.items()}
        if length is not None:
            for key in self.sequence_keys:
                batch[key] = batch[key][:, :length]
        return batch


def materialize(
    source: Sequence[Any],
    collate: Callable[..., HostBatch],
    read: Callable[[Sequence[Any], np.ndarray], list[Any]],
    length: int | None = None,
    chunk: int = 4096,
) -> ColumnSource:
    """Collate all of ``source`` (``chunk`` examples per read) into a :class:`ColumnSource`."""
    parts: list[HostBatch] = []
    for start in range(0, len(source), chunk):
        examples = read(source, np.arange(start, min(start + chunk, len(source))))
        parts.append(collate(examples) if length is None else collate(examples, length=length))
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]} if parts else {}
    return ColumnSource(arrays, length)

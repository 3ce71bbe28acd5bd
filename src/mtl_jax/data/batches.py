"""Shuffled fixed-size batches of an in-memory split, deterministic given a seed."""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np


def epoch_batches(
    split: Mapping[str, np.ndarray], batch_size: int, rng: np.random.Generator
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch in a random order, dropping the last partial batch (static shapes)."""
    size = len(next(iter(split.values())))
    order = rng.permutation(size)
    for start in range(0, size - batch_size + 1, batch_size):
        index = order[start : start + batch_size]
        yield {name: values[index] for name, values in split.items()}


def eval_batches(
    split: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order; the last batch is padded and masked per label array."""
    size = len(next(iter(split.values())))
    for start in range(0, size, batch_size):
        index = np.arange(start, start + batch_size)
        valid = index < size
        index = np.where(valid, index, 0)
        batch = {name: values[index] for name, values in split.items()}
        for name in split:
            if split[name].ndim == 1 and np.issubdtype(split[name].dtype, np.integer):
                batch[f"{name}_mask"] = valid
        yield batch

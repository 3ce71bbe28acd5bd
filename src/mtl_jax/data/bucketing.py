"""Length bucketing: few padded lengths (few compilations) and little padding.

Padded length. A batch of sequences is padded to the smallest *bucket* length that holds
its longest sequence. Buckets are powers of two from ``MIN_BUCKET`` (16) up to the first
power of two that holds the longest sequence of the dataset: the train step then compiles
at most ``log2(max_length / 16) + 1`` times (4 for sentences up to 128 tokens), and a batch
is never padded to more than twice its longest sequence.

Pooled sorting. To keep the longest sequence of a batch close to the others, an epoch's
random order is cut into pools of ``pool_batches`` global batches; each pool is sorted by
length and cut into batches; finally the order of all the epoch's batches is shuffled. The
examples of an epoch are still each seen once, batches still mix examples from all over
the dataset (a pool is a random sample), and everything is a pure function of the seed and
the epoch (the same "sorted pools" idea as fairseq's and tensor2tensor's bucketing).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MIN_BUCKET = 16
POOL_BATCHES = 16


def default_buckets(max_length: int, min_bucket: int = MIN_BUCKET) -> tuple[int, ...]:
    """Powers of two from ``min_bucket`` up to the first one ≥ ``max_length``."""
    buckets = [min_bucket]
    while buckets[-1] < max_length:
        buckets.append(buckets[-1] * 2)
    return tuple(buckets)


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket ≥ ``length`` (the largest bucket if none is: longer
    sequences are truncated by the collate function)."""
    for bucket in buckets:
        if length <= bucket:
            return int(bucket)
    return int(buckets[-1])


def pooled_batches(
    order: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    pool_batches: int = POOL_BATCHES,
) -> np.ndarray:
    """(num_batches, batch_size) example indices: ``order`` cut into pools of
    ``pool_batches`` batches, each pool sorted by length and cut into batches, then the
    batches shuffled. The trailing ``len(order) % batch_size`` examples are dropped."""
    num_batches = len(order) // batch_size
    kept = order[: num_batches * batch_size]
    pool = pool_batches * batch_size
    sorted_pools = [
        chunk[np.argsort(lengths[chunk], kind="stable")] for chunk in np.split(kept, range(pool, len(kept), pool))
    ]
    batches = np.concatenate(sorted_pools).reshape(num_batches, batch_size)
    return batches[rng.permutation(num_batches)]

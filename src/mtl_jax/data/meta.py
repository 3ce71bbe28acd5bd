"""The meta batch of the meta weightings (Auto-Lambda, MOML, FORUM): a second, resumable stream.

Where it comes from. A second deterministic iterator over the **training split**, in its own
order (seed ``meta_seed(seed)``, a fixed function of the run's seed), with the same global
batch size. This is what the three methods' authors do: Auto-Lambda's code draws its
"validation" batch from "a copy of train_loader with different data order", and MOML's and
FORUM's take the lower- and upper-level batches as two batches of the training loader. The
validation split stays untouched for model selection and the test split is never read.
``config.augment`` applies to the training stream only: the meta batch is clean data.

How it travels. The meta batch rides inside the training batch under prefixed keys
(``"meta/" + key``), so the batch stays one flat dict of arrays leading with the example
axis: it is split over devices, placed and donated like any other, and the step separates it
again with :func:`split_meta`.

Resume. :class:`MetaBatches` saves both positions, ``{"format", "train", "meta"}``; the
checkpoint stores it where it stores the plain iterator's state, and ``set_state`` puts both
streams back exactly.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mtl_jax.errors import DataError
from mtl_jax.types import HostBatch

META_PREFIX = "meta/"
STATE_FORMAT = "mtl_jax.meta_batches/1"
META_SALT = 0x6D657461  # "meta": keeps the meta order apart from every other seeded stream


def meta_seed(seed: int) -> int:
    """The meta stream's seed: a fixed function of the run's seed, different from it."""
    return int(np.random.default_rng([int(seed), META_SALT]).integers(2**31))


def with_meta(batch: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``batch`` with every array of ``meta`` added under ``"meta/" + key``."""
    return {**batch, **{META_PREFIX + key: value for key, value in meta.items()}}


def split_meta(batch: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(training batch, meta batch or None when ``batch`` carries none)."""
    main = {k: v for k, v in batch.items() if not k.startswith(META_PREFIX)}
    meta = {k[len(META_PREFIX):]: v for k, v in batch.items() if k.startswith(META_PREFIX)}
    return main, (meta or None)


class MetaBatches:
    """Training batches that each carry a meta batch: ``next`` draws one of each stream.

    ``train`` and ``meta`` are resumable iterators (``get_state``/``set_state``); ``get_state``
    is JSON, ``set_state`` restores both positions.
    """

    def __init__(self, train: Any, meta: Any):
        self.train = train
        self.meta = meta

    def __iter__(self) -> MetaBatches:
        return self

    def __next__(self) -> HostBatch:
        return with_meta(next(self.train), next(self.meta))

    def get_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "train": self.train.get_state(), "meta": self.meta.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        if found != STATE_FORMAT:
            raise DataError(
                f"data iterator state has format {found!r}, but this run's method needs a meta batch"
                f" ({STATE_FORMAT!r}); fix: resume with the aggregator the run was started with, or start afresh"
            )
        self.train.set_state(state["train"])
        self.meta.set_state(state["meta"])


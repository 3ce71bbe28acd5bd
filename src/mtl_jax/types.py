"""Types shared by every floor of the package."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

PyTree = Any
"""A nested structure of arrays (parameters, gradients, optimiser state)."""

Batch = Mapping[str, Any]
"""A batch as the model and the step see it: name -> array with the batch axis first
(``mtl_jax.data.spec`` lists the names). On the device these are ``jax.Array``s."""

HostBatch = dict[str, np.ndarray]
"""A batch as the data pipeline yields it: host NumPy arrays, before placement on the mesh."""


MASK_SUFFIX = "_mask"


def mask_key(key: str) -> str:
    """The name of the boolean array that says which entries of ``batch[key]`` count
    (True = counts): padding, or a task absent from a mixed batch. The one place the
    ``<key>_mask`` convention is spelled."""
    return key + MASK_SUFFIX


def path_name(path: Sequence[Any]) -> str:
    """The dotted name of a pytree leaf, ``a.b.0.c``, from its key path (dict keys,
    attribute names, sequence indices): how checkpoints and exported models name arrays."""
    parts = []
    for entry in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(entry, attribute):
                parts.append(str(getattr(entry, attribute)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts)

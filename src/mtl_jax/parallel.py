"""Data parallelism: the device mesh, replicated state and the sharded global batch.

One mesh axis, ``data``, spans every device of every process. The train state is replicated;
each device holds a contiguous slice of the global batch. Multi-host: call
``jax.distributed.initialize()`` first in every process; each process then passes its own
slice of the global batch to :func:`shard_batch`, and ``jax.devices()`` (hence the mesh) spans
all hosts.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from mtl_jax.types import PyTree

DATA_AXIS = "data"


def data_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Copies of every leaf of ``tree`` on every device of ``mesh``.

    Always copies, so donating the result to the train step never deletes ``tree``'s buffers.
    """
    copies = jax.tree.map(lambda leaf: leaf.copy(), tree)
    return jax.device_put(copies, replicated(mesh))


class BatchShapeError(ValueError):
    """The global batch cannot be split evenly over the mesh."""


def global_batch_size(batch: Mapping[str, Any], process_count: int = 1) -> int:
    """The common leading dimension of every array in ``batch`` times ``process_count``."""
    sizes = {name: int(np.shape(value)[0]) for name, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise BatchShapeError(
            f"batch arrays disagree on the batch dimension: {sizes}; every array must lead"
            " with the same number of examples"
        )
    return next(iter(sizes.values())) * process_count


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    """Raise a clear error if ``batch_size`` does not split evenly over the mesh's devices."""
    num_devices = mesh.size
    if batch_size % num_devices:
        lower = batch_size - batch_size % num_devices
        raise BatchShapeError(
            f"global batch size {batch_size} is not divisible by the {num_devices} devices of"
            f" the mesh; use a multiple of {num_devices} (e.g. {lower or num_devices}"
            f" or {lower + num_devices})"
        )


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Place this process's slice of the global batch on the mesh, split along ``data``."""
    check_divisible(global_batch_size(batch, jax.process_count()), mesh)
    sharding = batch_sharded(mesh)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in batch.items()
    }

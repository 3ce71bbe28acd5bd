"""Data parallelism: the device mesh, replicated state and the sharded global batch.

One mesh axis, ``data``, spans every device of every process. The train state is replicated;
each device holds a contiguous slice of the global batch. Multi-host: call
``jax.distributed.initialize()`` first in every process; each process then passes its own
slice of the global batch to :func:`shard_batch`, and ``jax.devices()`` (hence the mesh) spans
all hosts.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mtl_jax.errors import ConfigError
from mtl_jax.types import PyTree

DATA_AXIS = "data"

# Variables through which a cluster tells JAX's own detection (jax.distributed.initialize()
# without arguments) that this process is one of several.
CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")
DEFAULT_HEARTBEAT_SECONDS = 20


def cluster_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment describes a multi-process job that JAX can detect itself."""
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    sizes = [environ.get(name, "") for name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")]
    return any(size.isdigit() and int(size) > 1 for size in sizes) or bool(environ.get("TPU_WORKER_HOSTNAMES"))


def check_distributed_arguments(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    heartbeat_timeout_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
) -> None:
    """ConfigError unless the three are all given (and consistent) or all left out, and the
    heartbeat timeout is positive."""
    if heartbeat_timeout_seconds < 1:
        raise ConfigError(
            f"--heartbeat-timeout {heartbeat_timeout_seconds}: expected a positive number of seconds"
            f" (default {DEFAULT_HEARTBEAT_SECONDS})"
        )
    given = [value is not None for value in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError(
            "--coordinator, --num-processes and --process-id go together; pass all three"
            " (e.g. --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0) or none"
        )
    if not any(given):
        return
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator {coordinator!r}: expected HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:1234")
    if num_processes < 1:
        raise ConfigError(f"--num-processes {num_processes}: expected a positive integer")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id {process_id}: expected 0..{num_processes - 1} for {num_processes} processes")


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
) -> bool:
    """Join a multi-process job with ``jax.distributed.initialize``; whether one was joined.

    Explicit arguments win; else a cluster environment (``JAX_COORDINATOR_ADDRESS``, SLURM,
    Open MPI, Cloud TPU) is left to JAX's own detection; else this stays a single process.
    On CPUs, cross-process collectives need an implementation: Gloo (JAX 0.10 and 0.11).
    A peer that dies is noticed by the coordination service's heartbeat within
    ``heartbeat_timeout_seconds``; the survivors then fail instead of hanging.
    """
    check_distributed_arguments(coordinator, num_processes, process_id, heartbeat_timeout_seconds)
    if coordinator is None and not cluster_environment():
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used by the CPU client only
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        initialization_timeout=max(heartbeat_timeout_seconds * 3, 60),
    )
    return True


def wait_for_every_process(name: str) -> None:
    """A barrier across the processes of a multi-process job (nothing with one process):
    e.g. every process reads the run directory before process 0 starts writing it."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(name)


def is_lead_process() -> bool:
    """Whether this process writes logs and results (process 0 of a multi-process job)."""
    return jax.process_index() == 0


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
    With several processes each one holds the same host values (same seed, same checkpoint)
    and contributes its local devices' copies (``jax.make_array_from_callback``).
    """
    if jax.process_count() == 1:
        copies = jax.tree.map(lambda leaf: leaf.copy(), tree)
        return jax.device_put(copies, replicated(mesh))
    return jax.tree.map(lambda leaf: _replicated_from_host(leaf, replicated(mesh)), tree)


def _replicated_from_host(leaf: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _replicated_from_host(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(jax.device_get(leaf))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


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

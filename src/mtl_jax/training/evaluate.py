"""Evaluation: per-task loss and metrics over a whole split, exact over padding and devices."""

from __future__ import annotations

from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.training.mesh import DATA_AXIS, shard_batch

PyTree = Any


def make_eval_step(model: MultiTaskModel, mesh: Mesh):
    """Compiled ``(params, batch) -> {task: {name: (total, count)}}``, all-reduced over devices."""

    def local(params, batch):
        outputs = model.apply(params, batch)
        result = {}
        for task in model.tasks:
            named = {"loss": task.loss, **task.metrics}
            result[task.name] = {
                name: jax.lax.psum(jnp.stack(fn(outputs[task.name], batch)), DATA_AXIS)
                for name, fn in named.items()
            }
        return result

    return jax.jit(
        jax.shard_map(
            local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)), out_specs=PartitionSpec()
        )
    )


def evaluate(eval_step, params: PyTree, batches: Iterable[dict], mesh: Mesh) -> dict[str, dict[str, float]]:
    """Sum the statistics over ``batches`` and divide: {task: {"loss": ..., metric: ...}}."""
    totals = None
    for batch in batches:
        stats = eval_step(params, shard_batch(batch, mesh))
        totals = stats if totals is None else jax.tree.map(jnp.add, totals, stats)
    totals = jax.device_get(totals)
    return {
        task: {name: float(value[0] / max(value[1], 1.0)) for name, value in named.items()}
        for task, named in totals.items()
    }

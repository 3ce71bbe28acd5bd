"""A compiled, data-parallel evaluation over a whole split.

``make_evaluator`` compiles ``(params, batch) -> {task: {"loss": (total, count), stat: ...}}``
with every statistic all-reduced over the ``data`` axis; ``evaluate`` sums them over the
batches (on the device, one transfer at the end) and finalises per-task metrics.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from mtl_jax.data.spec import TaskSpec
from mtl_jax.evaluation.task_metrics import finalize, task_statistics
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.parallel import DATA_AXIS, shard_batch
from mtl_jax.types import PyTree



def make_evaluator(model: MultiTaskModel, specs: Mapping[str, TaskSpec], mesh: Mesh):
    """Compiled per-batch statistics for every task of ``model`` (specs by task name)."""

    def local(params, batch):
        outputs = model.apply(params, batch)
        result = {}
        for task in model.tasks:
            loss = jnp.stack(task.loss(outputs[task.name], batch)).astype(jnp.float32)
            stats = {"loss": loss, **task_statistics(specs[task.name], outputs[task.name], batch)}
            result[task.name] = jax.tree.map(lambda x: jax.lax.psum(x, DATA_AXIS), stats)
        return result

    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)), out_specs=PartitionSpec()
    )
    return jax.jit(sharded)


def evaluate(
    evaluator, params: PyTree, batches: Iterable[Mapping[str, np.ndarray]], mesh: Mesh,
    specs: Mapping[str, TaskSpec],
) -> dict[str, dict[str, float]]:
    """{task: {"loss": mean loss, metric: value}} over every batch of a split."""
    totals = None
    for batch in batches:
        stats = evaluator(params, shard_batch(batch, mesh))
        totals = stats if totals is None else jax.tree.map(jnp.add, totals, stats)
    if totals is None:
        raise ValueError("the evaluation split yielded no batches")
    totals = jax.device_get(totals)
    results = {}
    for task, stats in totals.items():
        loss_total, loss_count = np.asarray(stats["loss"], np.float64)
        results[task] = {"loss": float(loss_total / max(loss_count, 1.0)), **finalize(specs[task], stats)}
    return results

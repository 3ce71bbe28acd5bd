"""Instance mode: a Gramian over the per-example losses, weights per (example, task).

torchjd's instance-wise multi-task learning (IWMTL; Quinton & Layne 2024, "Jacobian Descent
for Multi-Objective Optimization", Sec. 5 on instance-wise risk minimisation) treats every
(example, task) loss as an objective of its own. Here, inside the compiled data-parallel step:

- the objectives are the per-example losses on the scale of the task losses,
  ℓ_{b,t} = B·total_{b,t} / N_t, with B the global batch size and N_t the global count of task
  t (examples, or tokens), so that L_t = (1/B) Σ_b ℓ_{b,t} (without masks ℓ_{b,t} is example
  b's own loss, torchjd's per-example losses); a masked task or a padded example gives
  ℓ_{b,t} = 0 and a zero row;
- their gradients are taken on the representation path, with respect to a zero-valued shift
  β of the representation shared by all examples, z_b ↦ z_b + β (the trunk's output, one
  example's slice of every leaf). The row of objective (b, t) is

      r_{b,t} = ∂ℓ_{b,t}/∂β = ∂ℓ_{b,t}/∂z_b = B·[∂L_t/∂z]_b                            (1)

  (the last equality holds because the heads act on each example alone), so the rows are the
  per-example slices of representation mode's T gradients: no extra backward pass;
- the Gramian over the GLOBAL batch, with objectives ordered example-major (b·T + t),

      G_{(b,s),(b',t)} = ⟨r_{b,s}, r_{b',t}⟩,       G ∈ R^{BT×BT},                     (2)

  is formed on every device from the all-gathered rows (B·T·F floats, F the size of one
  example's representation), so N devices give what one device gives on the same batch;
- the aggregator weighs the B·T objectives, w = weigh(G), and the shared parameters get the
  exact gradient of Σ_{b,t} w_{b,t} ℓ_{b,t}: one trunk backward pass with the cotangent
  Σ_t w_{b,t} r_{b,t} at example b. The heads get their plain gradients, as in the other modes.

Why a shared shift rather than z itself: the rows of different examples with respect to z
live in disjoint coordinates (z_b is example b's own), so that Gramian is block-diagonal and
no two examples could ever conflict. The shift β is the cheapest parameter all examples
share; (2) is exactly the per-example Gramian of a bias added to the trunk's output, and it
stands in for the Gramian with respect to the trunk's parameters as representation mode's
does for the task Gramian (MGDA-UB's argument, Sener & Koltun 2018). With B = 1 it is
representation mode's T×T Gramian.

Which methods take it: Gramian weightings (they see only G, whatever its size) whose state and
options do not depend on the number of objectives. A state sized by T (GradNorm's, GradVac's
EMA, ...) or options that name tasks (PCD's primary tasks, Aligned-MTL's preferences) have no
meaning for B·T objectives that change with every batch, so those are refused.

Scale: a weighting that averages (UPGrad's mean, MGDA's simplex) gives steps of the task
modes' size; one that sums (PCGrad: w = 1 without conflicts) gives B times that, as in
torchjd with per-example losses — scale its learning rate by 1/B.

Metrics stay per task: ``losses`` are the T task losses; ``weights`` are the equivalent task
weights, w̄_t = B·Σ_b n_{b,t} w_{b,t} / N_t (n_{b,t} example b's count), so that the update is
Σ_t w̄_t ∇L_t when the weights are the same for all examples (UPGrad without conflicts: 1/T
as in the task modes); the Gramian for gradient statistics is the task losses' Gramian with
respect to β, G^task_{st} = (1/B²) Σ_{b,b'} G_{(b,s),(b',t)}.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import MODES as TASK_MODES
from mtl_jax.aggregators.kinds import Aggregator, GramianWeighting, WeightingInputs
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import Batch, PyTree

INSTANCE = "instance"
# methods whose options are task indices: the indices mean nothing among B·T objectives
_TASK_INDEXED = {"pcd": "its primary tasks are task indices"}
# two objective counts at which a method's state must have the same shapes
_PROBE_COUNTS = (6, 7)
_HIGHEST = jax.lax.Precision.HIGHEST


def instance_refusal(aggregator: Aggregator) -> str | None:
    """Why ``aggregator`` cannot run in instance mode, or None if it can (module docstring)."""
    if not isinstance(aggregator, GramianWeighting):
        return "instance mode needs a Gramian weighting (it weighs the B·T per-example objectives from their Gramian)"
    if "representation" not in aggregator.modes:
        return "instance mode runs on the representation path, which this method does not support"
    if aggregator.name in _TASK_INDEXED:
        return f"{_TASK_INDEXED[aggregator.name]}, which mean nothing among the B·T per-example objectives"
    try:
        shapes = [jax.eval_shape(lambda n=n: aggregator.init(n)) for n in _PROBE_COUNTS]
    except (TypeError, ValueError) as error:
        return f"its options are sized by the task count ({' '.join(str(error).split())})"
    if jax.tree.structure(shapes[0]) != jax.tree.structure(shapes[1]) or jax.tree.leaves(shapes[0]) != jax.tree.leaves(shapes[1]):
        return "its state is sized by the task count, and instance mode has B·T objectives that change every batch"
    return None


def supported_modes(aggregator: Aggregator) -> tuple[str, ...]:
    """The train-step modes ``aggregator`` runs in: its ``modes``, and instance mode if it fits."""
    modes = tuple(getattr(aggregator, "modes", TASK_MODES))
    return modes + ((INSTANCE,) if instance_refusal(aggregator) is None else ())


def _per_example(loss_fn, outputs: PyTree, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(totals, counts), each (B,): a task's loss statistics of every example on its own."""

    def one(example_outputs, example_batch):
        stat = loss_fn(*jax.tree.map(lambda leaf: leaf[None], (example_outputs, example_batch)))
        return stat.total, stat.count

    return jax.vmap(one)(outputs, batch)


def per_example_statistics(model: MultiTaskModel, outputs: dict, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(totals, counts), each (B, T): every example's loss statistics per task (local rows)."""
    stats = [_per_example(task.loss, outputs[task.name], batch) for task in model.tasks]
    return jnp.stack([s[0] for s in stats], 1), jnp.stack([s[1] for s in stats], 1)


def example_rows(task_gradients: PyTree, batch_size: int) -> jax.Array:
    """(B, T, F) slices [∂L_t/∂z]_b (eq. (1) without the factor B) from leaves (T, B, ...)."""
    leaves = jax.tree.leaves(task_gradients)
    for leaf in leaves:
        if leaf.ndim < 2 or leaf.shape[1] != batch_size:
            raise ValueError(
                f"instance mode needs every leaf of the representation to have the batch axis first"
                f" (batch {batch_size}), got a leaf of shape {leaf.shape[1:]}; use mode 'representation'"
            )
    flat = [jnp.swapaxes(leaf, 0, 1).reshape(batch_size, leaf.shape[0], -1) for leaf in leaves]
    return jnp.concatenate([f.astype(jnp.promote_types(f.dtype, jnp.float32)) for f in flat], axis=-1)


def gather_examples(local: jax.Array, axis_name: str, start: jax.Array) -> jax.Array:
    """The global batch's rows (device-major, i.e. in batch order) on every device.

    An all-gather written as the psum of zero-padded blocks, so that shard_map types the
    result as replicated (the weighting's loops then carry replicated values)."""
    total = local.shape[0] * jax.lax.axis_size(axis_name)
    padded = jnp.zeros((total,) + local.shape[1:], local.dtype)
    return jax.lax.psum(jax.lax.dynamic_update_slice_in_dim(padded, local, start, axis=0), axis_name)


def instance_gramian(rows: jax.Array) -> jax.Array:
    """Eq. (2): (B·T, B·T) inner products of the (B, T, F) rows, objective b·T + t."""
    flat = rows.reshape(-1, rows.shape[-1])
    return jnp.matmul(flat, flat.T, precision=_HIGHEST)


def task_gramian(gram: jax.Array, num_tasks: int) -> jax.Array:
    """(T, T) G^task_{st} = (1/B²) Σ_{b,b'} G_{(b,s),(b',t)}: the Gramian of L_t = (1/B) Σ_b ℓ_{b,t}."""
    batch = gram.shape[0] // num_tasks
    return gram.reshape(batch, num_tasks, batch, num_tasks).sum(axis=(0, 2)) / batch**2


def task_weights(weights: jax.Array, counts: jax.Array) -> jax.Array:
    """(T,) w̄_t = B·Σ_b n_{b,t} w_{b,t} / N_t from (B, T) weights and counts (global)."""
    return weights.shape[0] * (weights * counts).sum(0) / jnp.maximum(counts.sum(0), 1.0)


class InstanceResult(NamedTuple):
    grads: PyTree  # {"shared": ∇ Σ w_{b,t} ℓ_{b,t}, "tasks": plain head gradients}
    losses: jax.Array  # (T,) task losses
    weights: jax.Array  # (T,) w̄_t
    gramian: jax.Array  # (T, T) G^task, for gradient statistics
    aggregator_state: PyTree
    instance_weights: jax.Array  # (B_global, T) w_{b,t}
    objective_gramian: jax.Array  # (B·T, B·T) G of eq. (2), global batch


def instance_step(
    model: MultiTaskModel,
    aggregator: GramianWeighting,
    params: PyTree,
    aggregator_state: PyTree,
    step: jax.Array,
    batch: Batch,
    rng: jax.Array | None,
    agg_key: jax.Array,
    axis_name: str,
) -> InstanceResult:
    """One instance-mode update inside ``shard_map`` over ``axis_name`` (module docstring)."""
    z, trunk_vjp = jax.vjp(lambda shared: model.encode(shared, batch, rng), params["shared"])
    local_batch = jax.tree.leaves(batch)[0].shape[0]

    def task_losses(tasks: PyTree, features: PyTree) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        totals, counts = per_example_statistics(model, model.decode(tasks, features, batch, rng), batch)
        counts = jax.lax.stop_gradient(counts)
        global_counts = jnp.maximum(jax.lax.psum(counts.sum(0), axis_name), 1.0)
        return jax.lax.psum(totals.sum(0), axis_name) / global_counts, (totals, counts)

    losses, heads_vjp, (totals, counts) = jax.vjp(task_losses, params["tasks"], z, has_aux=True)
    num_tasks = losses.shape[0]
    head_grads, _ = heads_vjp(jnp.ones_like(losses))
    per_task = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[
        jax.grad(lambda f, t=t: task_losses(params["tasks"], f)[0][t])(z) for t in range(num_tasks)
    ])  # ∂L_t/∂z, leaves (T, B, ...): one backward per task through its own head

    start = jax.lax.axis_index(axis_name) * local_batch
    gather = functools.partial(gather_examples, axis_name=axis_name, start=start)
    all_counts = gather(jax.lax.stop_gradient(counts))
    global_batch = all_counts.shape[0]
    gram = instance_gramian(global_batch * gather(example_rows(per_task, local_batch)))
    objective_losses = global_batch * gather(jax.lax.stop_gradient(totals)) / jnp.maximum(all_counts.sum(0), 1.0)
    objective_losses = objective_losses.reshape(-1)
    inputs = WeightingInputs(gramian=gram, losses=objective_losses.astype(losses.dtype), key=agg_key, step=step)
    weights, agg_state = aggregator.weigh(inputs, aggregator_state)
    weights = jax.lax.stop_gradient(weights).reshape(-1, num_tasks)

    local_weights = jax.lax.dynamic_slice_in_dim(weights, start, local_batch, axis=0)

    def cotangent(task_rows: jax.Array) -> jax.Array:  # (T, B, ...) -> Σ_t w_{b,t} B·[∂L_t/∂z]_b
        w = global_batch * local_weights.T.reshape(local_weights.T.shape + (1,) * (task_rows.ndim - 2))
        return (w.astype(task_rows.dtype) * task_rows).sum(0)

    (shared_grads,) = trunk_vjp(jax.tree.map(cotangent, per_task))
    return InstanceResult(
        {"shared": shared_grads, "tasks": head_grads},
        losses,
        task_weights(weights, all_counts),
        task_gramian(gram, num_tasks),
        agg_state,
        weights,
        gram,
    )


__all__ = [
    "INSTANCE",
    "InstanceResult",
    "example_rows",
    "instance_gramian",
    "instance_refusal",
    "instance_step",
    "per_example_statistics",
    "supported_modes",
    "task_gramian",
    "task_weights",
]

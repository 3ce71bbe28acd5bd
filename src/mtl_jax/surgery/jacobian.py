"""Per-task gradients in one compiled call: one forward pass, a batched VJP over T cotangents.

Inside ``shard_map`` every function here sees the local slice of the batch, while the task
losses are the *global* means (totals and counts all-reduced with ``psum``). Differentiating
a replicated parameter through that psum yields the globally reduced gradient on every device
(JAX inserts the transpose of the implicit broadcast, a psum), so no further reduction is
needed — and adding a pmean would be wrong.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import Batch
from mtl_jax.types import PyTree



def global_task_losses(
    model: MultiTaskModel,
    task_params: PyTree,
    z: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str,
) -> jax.Array:
    """(T,) task losses: all-reduced loss totals over all-reduced example counts."""
    return global_losses_of_outputs(model, model.decode(task_params, z, batch, rng), batch, axis_name)


def global_losses_of_outputs(model: MultiTaskModel, outputs: dict, batch: Batch, axis_name: str) -> jax.Array:
    """(T,) task losses from the heads' outputs (L_t reads only ``outputs[task t]``)."""
    stats = [task.loss(outputs[task.name], batch) for task in model.tasks]
    totals = jax.lax.psum(jnp.stack([s.total for s in stats]), axis_name)
    counts = jax.lax.psum(jax.lax.stop_gradient(jnp.stack([s.count for s in stats])), axis_name)
    return totals / jnp.maximum(counts, 1.0)


def _per_task_vjp(vjp_fn, losses: jax.Array, chunk: int | None):
    """``vjp_fn`` of each one-hot cotangent e_t, stacked on a leading task axis.

    Vectorised over the T cotangents (``chunk=None``) or ``chunk`` of them at a time.
    """
    cotangents = jnp.eye(losses.shape[0], dtype=losses.dtype)
    if chunk is None:
        return jax.vmap(vjp_fn)(cotangents)
    return jax.lax.map(vjp_fn, cotangents, batch_size=chunk)


def _gradient_of_sum(vjp_fn, losses: jax.Array):
    """``vjp_fn`` of the all-ones cotangent: the gradients of Σ_t L_t.

    Task-specific parameters get this plain sum (in a head: its own task's gradient). Taking
    it from one extra cotangent, rather than summing per-task rows, keeps T×T head backward
    passes out of the batched VJP; XLA drops whatever part of the call goes unused.
    """
    return vjp_fn(jnp.ones_like(losses))


class FullJacobian(NamedTuple):
    losses: jax.Array  # (T,)
    shared: PyTree  # every leaf (T, *param shape): row t = ∇_shared L_t
    tasks: PyTree  # task-specific gradients, already combined


def full_jacobian(
    model: MultiTaskModel,
    params: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str,
    chunk: int | None = None,
) -> FullJacobian:
    """T gradients of the shared parameters from one forward pass and one batched VJP."""

    def losses_of(shared: PyTree, tasks: PyTree) -> jax.Array:
        z = model.encode(shared, batch, rng)
        return global_task_losses(model, tasks, z, batch, rng, axis_name)

    losses, vjp_fn = jax.vjp(losses_of, params["shared"], params["tasks"])
    jac_shared = _per_task_vjp(lambda cotangent: vjp_fn(cotangent)[0], losses, chunk)
    return FullJacobian(losses, jac_shared, _gradient_of_sum(vjp_fn, losses)[1])


def _feature_gradients_task_by_task(losses_of_features, z: PyTree, num_tasks: int) -> PyTree:
    """∂L_t/∂z stacked on a leading task axis of every leaf of z (a pytree of arrays), one
    small backward per task through that task's head only.

    Unrolled over tasks rather than a batched VJP: XLA then drops the other heads from each
    task's backward, where a vmap over one-hot cotangents would run every head T times
    (measured 3× slower at T=8 on the CPU, benchmarks/step_time.py).
    """
    rows = [jax.grad(lambda f, t=t: losses_of_features(f)[t])(z) for t in range(num_tasks)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *rows)


class RepresentationJacobian(NamedTuple):
    losses: jax.Array  # (T,)
    representation: PyTree  # z's structure, leaves (T, *leaf.shape): row t = ∂L_t/∂z locally
    trunk_vjp: Any  # cotangent of z -> (gradient of the shared params,)
    tasks: PyTree


def representation_jacobian(
    model: MultiTaskModel,
    params: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str,
    chunk: int | None = None,
) -> RepresentationJacobian:
    """T gradients with respect to the shared representation z (heads only, T times)."""
    z, trunk_vjp = jax.vjp(lambda shared: model.encode(shared, batch, rng), params["shared"])

    def losses_of(tasks: PyTree, features: PyTree) -> jax.Array:
        return global_task_losses(model, tasks, features, batch, rng, axis_name)

    losses, heads_vjp = jax.vjp(losses_of, params["tasks"], z)
    task_grads, _ = _gradient_of_sum(heads_vjp, losses)
    if chunk is None:
        jac_z = _feature_gradients_task_by_task(lambda f: losses_of(params["tasks"], f), z, losses.shape[0])
    else:
        jac_z = _per_task_vjp(lambda c: heads_vjp(c)[1], losses, chunk)
    return RepresentationJacobian(losses, jac_z, trunk_vjp, task_grads)


def summed_gradients(
    model: MultiTaskModel,
    params: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str,
) -> tuple[jax.Array, PyTree]:
    """One backward pass of Σ_t L_t: (losses, gradient of every parameter)."""

    def losses_of(all_params: PyTree) -> jax.Array:
        z = model.encode(all_params["shared"], batch, rng)
        return global_task_losses(model, all_params["tasks"], z, batch, rng, axis_name)

    losses, vjp_fn = jax.vjp(losses_of, params)
    (grads,) = _gradient_of_sum(vjp_fn, losses)
    return losses, grads

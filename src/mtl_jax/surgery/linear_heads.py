"""Representation mode when every head is one dense layer on z: G from the heads' output gradients.

With out_t = z W_t + b_t (one ``nnx.Linear`` per task on the representation), the gradient of
task t's loss with respect to z is r_t = Δ_t W_tᵀ, where Δ_t = ∂L_t/∂out_t has N rows (the
rows of z: examples, or examples × positions) and C_t columns. Then

    G_st = ⟨r_s, r_t⟩ = Σ_n Δ_s[n] W_sᵀ W_t Δ_t[n]ᵀ = ⟨Δ_sᵀ Δ_t, W_sᵀ W_t⟩_F

(the Gram trick of docs/design.md, "The Gramian engine", applied to the heads' input instead
of a layer's weights), and the update's cotangent of z, Σ_t w_t r_t, is one backward pass of
the heads with the cotangents w_t Δ_t. Two (ΣC)×(ΣC) products replace the T rows of z's size,
which are never formed: at T=8 on the reference MLP (B=256, |z|=512, C=10) the rows are 4 MB
and their Gramian was a skinny (8 × 131072) matmul, the largest cost of the step after EW's.

Inside ``shard_map`` each device holds its own examples' Δ; Δᵀ Δ is summed over devices
(``psum``) before it meets W, so N devices give the Gramian of the whole global batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import Batch, PyTree


class LinearHeadsGramian(NamedTuple):
    losses: jax.Array  # (T,) global task losses
    gramian: jax.Array  # (T, T) G of the T gradients with respect to z, over the global batch
    deltas: dict[str, jax.Array]  # Δ_t = ∂L_t/∂out_t, this device's rows
    decode_vjp: Any  # (cotangents of the heads' outputs) -> (task-parameter gradients, z cotangent)
    trunk_vjp: Any  # z cotangent -> (gradient of the shared parameters,)
    tasks: PyTree  # Σ_t ∂L_t/∂heads: each head's own task's gradient

    def z_cotangent(self, weights: jax.Array) -> jax.Array:
        """Σ_t w_t ∂L_t/∂z: the heads' backward pass with the cotangents w_t Δ_t."""
        names = list(self.deltas)
        scaled = {name: weights[index].astype(self.deltas[name].dtype) * self.deltas[name]
                  for index, name in enumerate(names)}
        return self.decode_vjp(scaled)[1]


def _block_indicator(widths: list[int]) -> np.ndarray:
    """(T, ΣC) with ones where column c belongs to task t: sums a (ΣC)² matrix into T² blocks."""
    indicator = np.zeros((len(widths), sum(widths)), np.float32)
    start = 0
    for task, width in enumerate(widths):
        indicator[task, start:start + width] = 1.0
        start += width
    return indicator


def gramian_of_linear_heads(deltas: list[jax.Array], kernels: list[jax.Array], axis_name: str | None) -> jax.Array:
    """G_st = ⟨Δ_sᵀ Δ_t, W_sᵀ W_t⟩_F (module docstring), Δᵀ Δ summed over ``axis_name``.

    ``deltas[t]``: (..., C_t), any leading axes (the rows of z); ``kernels[t]``: (F, C_t).
    """
    precision = jax.lax.Precision.HIGHEST
    dtype = jnp.result_type(jnp.float32, *deltas, *kernels)  # float32 at least (bf16 heads)
    rows = jnp.concatenate([d.reshape(-1, d.shape[-1]).astype(dtype) for d in deltas], axis=1)
    delta_products = jnp.matmul(rows.T, rows, precision=precision)
    if axis_name is not None:
        delta_products = jax.lax.psum(delta_products, axis_name)
    columns = jnp.concatenate([w.astype(dtype) for w in kernels], axis=1)
    kernel_products = jnp.matmul(columns.T, columns, precision=precision)
    indicator = jnp.asarray(_block_indicator([w.shape[-1] for w in kernels]), dtype)
    block_sums = jnp.matmul(indicator, delta_products * kernel_products, precision=precision)
    return jnp.matmul(block_sums, indicator.T, precision=precision)


def linear_heads_gramian(
    model: MultiTaskModel,
    params: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str,
    losses_of_outputs,
) -> LinearHeadsGramian:
    """Losses, G over z and the pieces of the update, for a model whose ``linear_heads`` is
    true. ``losses_of_outputs(outputs)`` maps the heads' outputs to the (T,) global losses."""
    z, trunk_vjp = jax.vjp(lambda shared: model.encode(shared, batch, rng), params["shared"])
    outputs, decode_vjp = jax.vjp(lambda tasks, f: model.decode(tasks, f, batch, rng), params["tasks"], z)
    losses, loss_vjp = jax.vjp(losses_of_outputs, outputs)
    (deltas,) = loss_vjp(jnp.ones_like(losses))  # Δ_t: only L_t reads out_t
    names = model.task_names
    gram = gramian_of_linear_heads(
        [deltas[name] for name in names], [params["tasks"][name]["kernel"] for name in names], axis_name
    )
    task_grads, _ = decode_vjp(deltas)
    ordered = {name: deltas[name] for name in names}
    return LinearHeadsGramian(losses, gram, ordered, decode_vjp, trunk_vjp, task_grads)

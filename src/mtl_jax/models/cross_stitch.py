"""Cross-stitch networks (Misra et al. 2016, "Cross-stitch Networks for Multi-task
Learning", eq. 1), here as T task columns of dense layers on top of the shared trunk.

Each column c has ``layers`` Dense → ReLU layers; after every layer the cross-stitch unit
mixes the columns' activations, x̃_k = Σ_j α_kj x_j, with α initialised to 0.9 on the
diagonal and 0.1/(T-1) elsewhere (the paper's (α_S, α_D) = (0.9, 0.1) for T = 2).

Partition: every column feeds every task through the stitches, so the trunk, all columns
and all but the last stitch unit are shared; row k of the last unit, which only task k
reads, is task-specific (with its head). ``z = {leaf: (…, T, H)}``: the columns' last
outputs before the final stitch.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.composition import SharedEncoder, TaskPath
from mtl_jax.models.experts import StackedDense
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.task import Task


def stitch_init(num_tasks: int, same: float = 0.9) -> np.ndarray:
    """(T, T) α: ``same`` on the diagonal, the rest of each row spread evenly."""
    if num_tasks == 1:
        return np.ones((1, 1), np.float32)
    alpha = np.full((num_tasks, num_tasks), (1.0 - same) / (num_tasks - 1), np.float32)
    np.fill_diagonal(alpha, same)
    return alpha


def cross_stitch(alpha: jax.Array, columns: jax.Array) -> jax.Array:
    """x̃_k = Σ_j α_kj x_j: (T, T), (…, T, H) → (…, T, H)."""
    return jnp.einsum("kj,...jh->...kh", alpha.astype(columns.dtype), columns)


class ColumnsBody(nnx.Module):
    """Shared: the T columns and the stitch units between their layers."""

    def __init__(self, num_tasks: int, in_features: int, hidden: Sequence[int], dropout, dtype, rngs):
        sizes = [in_features, *hidden]
        self.layers = nnx.List(
            [
                StackedDense(num_tasks, a, b, first=i == 0, dtype=dtype, rngs=rngs)
                for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
            ]
        )
        self.stitches = nnx.List([nnx.Param(jnp.asarray(stitch_init(num_tasks))) for _ in hidden[:-1]])
        self.dropout = nnx.Dropout(dropout)

    def _columns(self, x: jax.Array, rngs) -> jax.Array:
        for index, layer in enumerate(self.layers):
            x = self.dropout(nnx.relu(layer(x)), rngs=rngs, deterministic=rngs is None)
            if index < len(self.stitches):
                x = cross_stitch(self.stitches[index][...], x)
        return x

    def __call__(self, representation: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        return jax.tree.map(lambda x: self._columns(x, rngs), representation)


class StitchRow(nnx.Module):
    """Task-specific: row k of the last stitch unit, x_k = Σ_j α_kj column_j."""

    def __init__(self, task_index: int, num_tasks: int):
        self.alpha = nnx.Param(jnp.asarray(stitch_init(num_tasks)[task_index]))

    def __call__(self, z: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        alpha = self.alpha[...]
        return jax.tree.map(lambda columns: jnp.einsum("j,...jh->...h", alpha.astype(columns.dtype), columns), z)


def build_cross_stitch(
    trunk: nnx.Module,
    feature_dim: int,
    tasks: Sequence[Task],
    *,
    keys: Sequence[str],
    column_hidden: Sequence[int] = (64, 64),
    dropout: float = 0.0,
    dtype=None,
    rngs: nnx.Rngs,
) -> tuple[MultiTaskModel, PyTree]:
    """Cross-stitch columns over ``trunk``, one head per task."""
    body = ColumnsBody(len(tasks), feature_dim, tuple(column_hidden), dropout, dtype, rngs)
    paths = {
        task.name: TaskPath(StitchRow(index, len(tasks)), task.make_head(column_hidden[-1], rngs))
        for index, task in enumerate(tasks)
    }
    return assemble_model(SharedEncoder(trunk, keys, body), paths, tasks)

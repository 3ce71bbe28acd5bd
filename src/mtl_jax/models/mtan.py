"""Multi-Task Attention Network (Liu et al. 2019, "End-to-End Multi-Task Learning with
Attention", §3.1–3.2), on a stack of dense blocks over the shared trunk.

The shared network has blocks u¹ = ReLU(W₁ x), u^l = ReLU(W_l u^{l-1}). Task k attends to
every block with its own soft-attention mask (eq. 1):

    a^l_k = σ(h^l_k(ReLU(g^l_k([u^l; p^{l-1}_k])))),   p^l_k = a^l_k ⊙ u^l,

(p⁰ absent: the first mask reads u¹ only) and its head reads p^L_k.

Partition: the trunk and the blocks are shared; the attention modules g, h of task k are
task-specific. ``z = {"levels": [u¹, …, u^L]}``, so the step's representation mode sees
every block's features. The paper's shared feature layer f^(j), applied to each task's
attended features, is left out: here all blocks have one width and no shared parameter may
act on task-specific features (it would not belong to ``encode``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.composition import SharedEncoder, TaskPath
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.task import Task


class SharedBlocks(nnx.Module):
    """Shared: x ↦ {"levels": [u¹, …, u^L]} leaf by leaf."""

    def __init__(self, in_features: int, width: int, num_levels: int, dropout, dtype, rngs: nnx.Rngs):
        sizes = [in_features] + [width] * num_levels
        self.blocks = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.dropout = nnx.Dropout(dropout)

    def _levels(self, x: jax.Array, rngs) -> list[jax.Array]:
        levels = []
        for block in self.blocks:
            x = self.dropout(nnx.relu(block(x)), rngs=rngs, deterministic=rngs is None)
            levels.append(x)
        return levels

    def __call__(self, representation: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        return {"levels": {key: self._levels(x, rngs) for key, x in representation.items()}}


class AttentionModule(nnx.Module):
    """Task-specific mask a = σ(h(ReLU(g(input)))) of one level."""

    def __init__(self, in_features: int, width: int, dtype, rngs: nnx.Rngs):
        self.g = nnx.Linear(in_features, width, dtype=dtype, rngs=rngs)
        self.h = nnx.Linear(width, width, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.sigmoid(self.h(nnx.relu(self.g(x))))


class TaskAttention(nnx.Module):
    """Task-specific: the attention modules of one task over every shared level."""

    def __init__(self, width: int, num_levels: int, dtype, rngs: nnx.Rngs):
        self.attention = nnx.List(
            [AttentionModule(width if level == 0 else 2 * width, width, dtype, rngs) for level in range(num_levels)]
        )

    def _attend(self, levels: list[jax.Array]) -> jax.Array:
        attended = None
        for module, u in zip(self.attention, levels):
            query = u if attended is None else jnp.concatenate([u, attended], axis=-1)
            attended = module(query) * u
        return attended

    def __call__(self, z: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        return {key: self._attend(levels) for key, levels in z["levels"].items()}


def build_mtan(
    trunk: nnx.Module,
    feature_dim: int,
    tasks: Sequence[Task],
    *,
    keys: Sequence[str],
    width: int = 64,
    num_levels: int = 2,
    dropout: float = 0.0,
    dtype=None,
    rngs: nnx.Rngs,
) -> tuple[MultiTaskModel, PyTree]:
    """MTAN attention over ``num_levels`` shared dense blocks on ``trunk``."""
    body = SharedBlocks(feature_dim, width, num_levels, dropout, dtype, rngs)
    paths = {
        task.name: TaskPath(TaskAttention(width, num_levels, dtype, rngs), task.make_head(width, rngs))
        for task in tasks
    }
    return assemble_model(SharedEncoder(trunk, keys, body), paths, tasks)

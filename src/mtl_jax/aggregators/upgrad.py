"""UPGrad — Quinton & Layne, "Jacobian Descent for Multi-Objective Optimization", 2024
(arXiv:2406.16232; reference library torchjd).

Let π_J(x) be the projection of x onto the dual cone of the rows of J, {y : Jy ≥ 0}.
UPGrad projects every task gradient onto that cone and averages (Sec. 3, definition of
𝒜_UPGrad):

    𝒜_UPGrad(J) = (1/T) Σ_i π_J(g_i).

By the paper's Prop. 1, for any u ∈ R^T, π_J(Jᵀu) = Jᵀv with

    v ∈ argmin_{v ≥ u} vᵀ G v,                                                      (Prop. 1)

a box-constrained QP in T dimensions. Hence the weights are w = (1/T) Σ_i v⁽ⁱ⁾, with v⁽ⁱ⁾
the solution for u = e_i (the T problems are solved in parallel with ``vmap``). The result
has a non-negative inner product with every g_i (it lies in the dual cone, which is convex),
so it never conflicts with any task. The 1/T normalisation (the "mean" preference vector)
is the paper's default. torchjd additionally adds a small ridge to G for its QP solver; this
implementation solves the QP exactly (``qp.project_onto_dual_cone``) and needs none.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import project_onto_dual_cone


def upgrad_weights(gramian: jax.Array) -> jax.Array:
    """w with Jᵀw = (1/T) Σ_i π_J(g_i)."""
    num_tasks = gramian.shape[0]
    eye = jnp.eye(num_tasks, dtype=gramian.dtype)
    per_task = jax.vmap(lambda u: project_onto_dual_cone(gramian, u))(eye)
    return per_task.mean(axis=0)


def _weigh(inputs: WeightingInputs, state):
    return upgrad_weights(inputs.gramian), state


def upgrad() -> GramianWeighting:
    """UPGrad (Quinton & Layne 2024): mean of each gradient's projection onto the dual cone."""
    return GramianWeighting("upgrad", no_state, _weigh)

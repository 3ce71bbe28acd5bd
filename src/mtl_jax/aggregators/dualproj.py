"""DualProj — Quinton & Layne, "Jacobian Descent for Multi-Objective Optimization", 2024
(arXiv:2406.16232), the second dual-cone aggregator of the paper.

Project the mean gradient onto the dual cone {y : Jy ≥ 0} of the task gradients:

    𝒜_DualProj(J) = π_J((1/T) Σ_i g_i) = Jᵀv,   v = argmin_{v ≥ 1/T} vᵀ G v           (Prop. 1)

(the paper's Prop. 1 with u = 1/T; the "mean" preference vector is the default). The result
has a non-negative inner product with every g_i. Solved exactly by
``qp.project_onto_dual_cone``; no hyper-parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.qp import project_onto_dual_cone


def dualproj_weights(gramian: jax.Array) -> jax.Array:
    """w with Jᵀw = π_J(mean of the g_i)."""
    num_tasks = gramian.shape[0]
    return project_onto_dual_cone(gramian, jnp.full((num_tasks,), 1.0 / num_tasks, gramian.dtype))


def _weigh(inputs: WeightingInputs, state):
    return dualproj_weights(inputs.gramian), state


def dualproj() -> GramianWeighting:
    """DualProj (Quinton & Layne 2024): mean gradient projected onto the dual cone."""
    return GramianWeighting("dualproj", no_state, _weigh)

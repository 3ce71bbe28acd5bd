"""GradVac — "Gradient Vaccine: Investigating and Improving Multi-task Optimization in Massively
Multilingual Models", Wang et al., ICLR 2021, Sec. 3.3 and Algorithm 1. Hyper-parameter: the
EMA decay β (paper default β = 1e-2, also that of other public ports; LibMTL defaults to
0.5, pass ``beta=0.5`` through ``aggregator_options`` to match it); targets start at φ̂ = 0.

For every task i, start from g_i' = g_i and visit the other tasks j in a random order. With
φ_ij = cos(g_i', g_j) and the target similarity φ̂_ij, if φ_ij < φ̂_ij move g_i' towards g_j
until their cosine equals the target:

    g_i' ← g_i' + ‖g_i'‖ (φ̂_ij √(1 − φ_ij²) − φ_ij √(1 − φ̂_ij²)) / (‖g_j‖ √(1 − φ̂_ij²)) · g_j,

and in every visit (adjusted or not) update the target by an exponential moving average

    φ̂_ij ← (1 − β) φ̂_ij + β φ_ij.

The update is Σ_i g_i'. With φ̂ = 0 the adjustment is PCGrad's projection (Yu et al. 2020).
The targets φ̂ (T×T, not symmetric) are the aggregator state; this implementation works at
the granularity "whole shared model" (the paper also applies it per layer / parameter group).

Gramian form: every g_i' stays in the span of the original gradients, g_i' = Jᵀw⁽ⁱ⁾, so
g_i'·g_j = (G w⁽ⁱ⁾)_j, ‖g_i'‖² = w⁽ⁱ⁾ᵀ G w⁽ⁱ⁾, and an adjustment adds its coefficient to
w⁽ⁱ⁾_j. The weights are w = Σ_i w⁽ⁱ⁾ (as in pcgrad.py). Pairs involving a zero vector (no
cosine) are neither adjusted nor averaged; a target at ±1 (√(1 − φ̂²) = 0) adjusts nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs
from mtl_jax.aggregators.pcgrad import random_visit_orders

DEFAULT_BETA = 1e-2


class GradVacState(NamedTuple):
    """targets: (T, T) the EMA target cosines φ̂_ij (row i: task i's targets towards every j)."""

    targets: jax.Array


def gradvac_weights(
    gramian: jax.Array, targets: jax.Array, visit_orders: jax.Array, beta: float = DEFAULT_BETA
) -> tuple[jax.Array, jax.Array]:
    """GradVac weights w with Σ_i g_i' = Jᵀw, and the updated (T, T) targets φ̂.

    Args:
      gramian: (T, T) Gramian of the original task gradients.
      targets: (T, T) current targets φ̂_ij (row i: task i's targets towards every j).
      visit_orders: (T, T) int; row i is the order task i visits the tasks (i itself skipped).
      beta: EMA decay.
    """
    num_tasks = gramian.shape[0]
    norms = jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))
    targets = targets.astype(gramian.dtype)

    def vaccinate(task: jax.Array, order: jax.Array, target_row: jax.Array):
        def visit(carry, other):
            weights, row = carry
            inner = gramian[other] @ weights  # g_i' · g_j
            own_norm = jnp.sqrt(jnp.maximum(weights @ gramian @ weights, 0.0))
            denominator = own_norm * norms[other]
            valid = (other != task) & (denominator > 0)
            cosine = jnp.clip(inner / jnp.where(valid, denominator, 1.0), -1.0, 1.0)
            target = row[other]
            target_sine = jnp.sqrt(jnp.maximum(1.0 - target**2, 0.0))
            adjust = valid & (cosine < target) & (target_sine > 0)
            coefficient = (
                own_norm
                * (target * jnp.sqrt(1.0 - cosine**2) - cosine * target_sine)
                / jnp.where(adjust, norms[other] * target_sine, 1.0)
            )
            weights = weights.at[other].add(jnp.where(adjust, coefficient, 0.0))
            row = row.at[other].set(jnp.where(valid, (1 - beta) * target + beta * cosine, target))
            return (weights, row), None

        start = jax.nn.one_hot(task, num_tasks, dtype=gramian.dtype)
        (weights, row), _ = jax.lax.scan(visit, (start, target_row), order, unroll=True)
        return weights, row

    per_task, new_targets = jax.vmap(vaccinate)(jnp.arange(num_tasks), visit_orders, targets)
    return per_task.sum(axis=0), new_targets


def gradvac(beta: float = DEFAULT_BETA) -> GramianWeighting:
    """GradVac (Wang et al. 2021): align pairwise cosines to EMA targets (beta=1e-2).

    A fresh random visiting order per task and step, drawn from the step key.
    """
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"gradvac needs 0 < beta <= 1, got {beta}")

    def init(num_tasks: int) -> GradVacState:
        return GradVacState(targets=jnp.zeros((num_tasks, num_tasks), jnp.float32))

    def weigh(inputs: WeightingInputs, state: GradVacState):
        orders = random_visit_orders(inputs.key, inputs.gramian.shape[0])
        weights, targets = gradvac_weights(inputs.gramian, state.targets, orders, beta)
        return weights, GradVacState(targets=targets.astype(state.targets.dtype))

    return GramianWeighting("gradvac", init, weigh)

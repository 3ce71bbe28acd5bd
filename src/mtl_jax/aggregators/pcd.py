"""PCD — primary-constrained descent: follow the primary task(s), never at the cost of a
secondary task (to first order). Listed among torchjd 0.18's aggregators in issue 16; no
torchjd source for it was available to us, so the definition below is ours, built from the
dual-cone projection of Quinton & Layne, "Jacobian Descent for Multi-Objective
Optimization", 2024 (arXiv:2406.16232), Prop. 1.

Tasks are split into primary ones P (by default the first task) and secondary ones S. The
target direction is the primary gradient, optionally with a share β of the secondary ones,

    t = Σ_{p∈P} g_p + β Σ_{s∈S} g_s = Jᵀu,   u_p = 1, u_s = β,

and the update is its projection onto the dual cone of all the task gradients,

    d = π_J(t) = argmin_{y : J y ≥ 0} ½ ‖y − t‖².                                 (1)

Guarantees, to first order for a small step θ ← θ − η d:
- every secondary task makes progress or stays put: ⟨g_s, d⟩ ≥ 0 (constraint of (1));
- the primary direction makes progress: ⟨t, d⟩ = ‖d‖² ≥ 0, since for a projection onto a
  convex cone ⟨t − d, d⟩ = 0; with β = 0 and one primary task, ⟨g_p, d⟩ = ‖d‖²;
- with no conflict (t already in the cone) d = t: plain primary (or weighted) descent.

By Prop. 1 of Quinton & Layne, π_J(Jᵀu) = Jᵀv with v = argmin_{v ≥ u} vᵀGv, a
box-constrained QP in T dimensions that needs only the Gramian G = JJᵀ, so PCD is a
Gramian weighting, w = v, that runs in both modes. The QP is solved exactly by
``qp.project_onto_dual_cone`` (UPGrad's engine).

Options: ``primary`` — indices of the primary tasks in the step's task order (default
``(0,)``, the first task). A run with ``auxiliary_tasks`` sets it from the split: the
non-auxiliary tasks are primary, the auxiliary ones secondary (``aggregator_options.primary``
is then refused, :mod:`mtl_jax.training.auxiliary`); without auxiliary tasks the default holds;
``secondary_weight`` — β ≥ 0 (default 0: the secondaries only constrain the step).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import EmptyState, GramianWeighting, WeightingInputs
from mtl_jax.aggregators.qp import project_onto_dual_cone

DEFAULT_PRIMARY = (0,)
DEFAULT_SECONDARY_WEIGHT = 0.0


def target_coefficients(num_tasks: int, primary: Sequence[int], secondary_weight: float, dtype=jnp.float32) -> jax.Array:
    """u with t = Jᵀu: 1 on the primary tasks, β on the secondary ones."""
    is_primary = jnp.zeros((num_tasks,), bool).at[jnp.asarray(tuple(primary), jnp.int32)].set(True)
    return jnp.where(is_primary, 1.0, secondary_weight).astype(dtype)


def pcd_weights(gramian: jax.Array, coefficients: jax.Array) -> jax.Array:
    """w with Jᵀw = π_J(Jᵀu): the projection of the target onto {y : Jy ≥ 0} (eq. 1)."""
    return project_onto_dual_cone(gramian, coefficients.astype(gramian.dtype))


def check_primary(primary: Sequence[int], num_tasks: int | None = None) -> tuple[int, ...]:
    """The primary indices as a tuple; ValueError naming the problem if they are unusable."""
    if isinstance(primary, (str, bytes)) or not isinstance(primary, Sequence):
        raise ValueError(f"pcd needs primary as a list of task indices, got {primary!r}")
    indices = tuple(primary)
    if not indices:
        raise ValueError("pcd needs at least one primary task (primary=[0] makes the first task primary)")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f"pcd needs integer task indices in primary, got {list(indices)}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"pcd got a repeated index in primary {list(indices)}")
    if min(indices) < 0:
        raise ValueError(f"pcd needs non-negative indices in primary, got {list(indices)}")
    if num_tasks is not None and max(indices) >= num_tasks:
        raise ValueError(
            f"pcd primary {list(indices)} names a task index ≥ the {num_tasks} tasks of this run"
        )
    return indices


def pcd(primary: Sequence[int] = DEFAULT_PRIMARY, secondary_weight: float = DEFAULT_SECONDARY_WEIGHT) -> GramianWeighting:
    """PCD (primary-constrained descent, ours): the primary gradient projected onto the dual cone of all tasks (primary=[0], secondary_weight=0).

    Raises ValueError for an empty, repeated, negative or non-integer ``primary``, or a
    negative ``secondary_weight``; ``init`` also for an index beyond the run's tasks.
    """
    indices = check_primary(primary)
    if not isinstance(secondary_weight, (int, float)) or isinstance(secondary_weight, bool):
        raise ValueError(f"pcd needs a number for secondary_weight, got {secondary_weight!r}")
    if not secondary_weight >= 0.0:  # also rejects NaN
        raise ValueError(f"pcd needs secondary_weight ≥ 0, got {secondary_weight}")
    beta = float(secondary_weight)

    def init(num_tasks: int) -> EmptyState:
        check_primary(indices, num_tasks)
        return EmptyState()

    def weigh(inputs: WeightingInputs, state):
        num_tasks = inputs.gramian.shape[0]
        check_primary(indices, num_tasks)
        coefficients = target_coefficients(num_tasks, indices, beta, inputs.gramian.dtype)
        return pcd_weights(inputs.gramian, coefficients), state

    return GramianWeighting("pcd", init, weigh)

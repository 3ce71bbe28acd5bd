"""IMTL-G — "Towards Impartial Multi-task Learning", Liu et al., ICLR 2021, Sec. 3.2 (gradient
balance). No hyper-parameters.

IMTL-G looks for the update d = Σ_t α_t g_t, Σ_t α_t = 1, whose projections on the unit
gradients u_t = g_t/‖g_t‖ are all equal:

    d·u_1 = d·u_t  for every t,  i.e.  d·(u_1 − u_t) = 0.

With D = [g_1 − g_2, …, g_1 − g_T]ᵀ and U = [u_1 − u_2, …, u_1 − u_T]ᵀ the paper's closed form is

    α_{2:T} = g_1 Uᵀ (D Uᵀ)⁻¹,   α_1 = 1 − Σ_{t≥2} α_t.

Gramian form. (u_s − u_t)·g_r = G_sr/‖g_s‖ − G_tr/‖g_t‖, so the conditions are the T×T linear
system K α = e_ref with row ``ref`` = 1ᵀ (the constraint Σα = 1) and row t ≠ ref equal to
(B_ref − B_t) where B = diag(1/‖g‖) G (B_tr = u_t·g_r). This is exactly the paper's system
(substitute α_1 = 1 − Σ α_{2:T}); we use the largest gradient as the reference task instead of
task 1, and scale B by 1/max‖g‖ so that K is scale-free. The update is Jᵀα exactly.

Degenerate cases (the paper assumes independent, non-zero gradients):
- a zero gradient has no unit vector; its condition row becomes α_t = 0, i.e. IMTL-G runs on
  the other tasks;
- parallel gradients (equal unit vectors) make a condition row vanish and K singular: the
  conditions no longer fix α, and we take the minimum-norm α (SVD pseudo-inverse with a
  relative cut-off ``rtol``); the result still has equal projections and Σα = 1;
- if the unit vectors sum to zero with all-positive coefficients (e.g. simplex-like, fully
  conflicting gradients) the only direction with equal projections is d = 0; the closed
  form then returns the null-space α with Σα = 1 and d = Jᵀα = 0, as the paper's formula does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs, no_state
from mtl_jax.aggregators.psd import DEFAULT_RTOL, inverse_norms


def imtl_g_system(gramian: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The (T, T) matrix K and right-hand side e_ref of IMTL-G's linear conditions K α = e_ref."""
    num_tasks = gramian.shape[0]
    norms = jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))
    reference = jnp.argmax(norms)
    scale = inverse_norms(gramian)[reference]  # 1 / max ‖g‖ (0 if every gradient is zero)
    unit_projections = inverse_norms(gramian)[:, None] * gramian * scale  # u_t·g_r / max‖g‖
    conditions = unit_projections[reference][None, :] - unit_projections  # (u_ref − u_t)·g_r
    identity = jnp.eye(num_tasks, dtype=gramian.dtype)
    rows = jnp.where((norms > 0)[:, None], conditions, identity)  # zero gradient: α_t = 0
    is_reference = jnp.arange(num_tasks) == reference
    rows = jnp.where(is_reference[:, None], jnp.ones_like(rows), rows)  # Σ α = 1
    return rows, is_reference.astype(gramian.dtype)


def imtl_g_weights(gramian: jax.Array, rtol: float = DEFAULT_RTOL) -> jax.Array:
    """IMTL-G weights α (Σα = 1) with d = Jᵀα, minimum-norm where the conditions are singular."""
    rows, rhs = imtl_g_system(gramian)
    return jnp.linalg.pinv(rows, rtol=rtol) @ rhs


def imtl_g(rtol: float = DEFAULT_RTOL) -> GramianWeighting:
    """IMTL-G (Liu et al. 2021): equal projection of the update on every unit task gradient."""

    def weigh(inputs: WeightingInputs, state):
        return imtl_g_weights(inputs.gramian, rtol), state

    return GramianWeighting("imtl_g", no_state, weigh)

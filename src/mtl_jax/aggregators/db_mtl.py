"""DB-MTL — "Dual-Balancing for Multi-Task Learning", Lin et al., 2023 (arXiv:2308.12029),
Sec. 3 and Algorithm 1. Hyper-parameters (the authors' defaults in LibMTL): β = 0.9,
σ = 0 (EMA rate β_k = β / k^σ at step k = 1, 2, …).

Two balancings:
- loss scale: every task is trained on log L_t, whose gradient is g_t / L_t (here with
  L_t + 1e-8, as the authors);
- gradient magnitude: an exponential moving average of those gradients (state, started at 0)

      ĝ_{k,t} = h_{k,t} + β_k (ĝ_{k−1,t} − h_{k,t}),      h_{k,t} = g_{k,t} / (L_{k,t} + 1e-8),

  is rescaled so that every task contributes the largest magnitude:

      d_k = Σ_t α_t ĝ_{k,t},      α_t = max_s ‖ĝ_{k,s}‖ / (‖ĝ_{k,t}‖ + 1e-8).

The reported weights are α. The moving averages ĝ are shaped like the shared parameters, so
DB-MTL is Jacobian-level and supports only the full mode (as in LibMTL).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.base import (
    Aggregator,
    PyTree,
    WeightingInputs,
    jacobian_only_weigh,
    params_shaped_state,
)
from mtl_jax.aggregators.gramian import weighted_sum
from mtl_jax.aggregators.jacobian_ops import at_least_float32, row_squared_norms, scale_rows, zeros_rows

DEFAULT_BETA = 0.9
DEFAULT_BETA_SIGMA = 0.0
LOSS_EPS = 1e-8


def db_mtl_update(
    jacobian: PyTree, losses: jax.Array, state: dict, beta: float, beta_sigma: float
) -> tuple[PyTree, jax.Array, dict]:
    """One DB-MTL step: (d, α, new state {"buffer": ĝ, "count": k})."""
    count = state["count"] + 1
    beta_k = beta / count.astype(jnp.float32) ** beta_sigma
    log_grads = scale_rows(1.0 / (at_least_float32(losses) + LOSS_EPS), jacobian)
    buffer = jax.tree.map(
        lambda b, h: h.astype(b.dtype) + beta_k * (b - h.astype(b.dtype)), state["buffer"], log_grads
    )
    norms = jnp.sqrt(row_squared_norms(buffer))
    scales = norms.max() / (norms + 1e-8)
    return weighted_sum(scales, buffer), scales, {"buffer": buffer, "count": count}


def db_mtl(beta: float = DEFAULT_BETA, beta_sigma: float = DEFAULT_BETA_SIGMA) -> Aggregator:
    """DB-MTL: log losses, EMA of their gradients, every task rescaled to the largest norm."""
    if not 0.0 <= beta < 1.0 or beta_sigma < 0.0:
        raise ValueError(f"db_mtl needs 0 <= beta < 1 and beta_sigma >= 0, got {beta}, {beta_sigma}")

    def init_with_params(num_tasks: int, shared_params: PyTree) -> dict:
        return {"buffer": zeros_rows(num_tasks, shared_params), "count": jnp.zeros((), jnp.int32)}

    def combine(jacobian: PyTree, inputs: WeightingInputs, state: dict):
        return db_mtl_update(jacobian, inputs.losses, state, beta, beta_sigma)

    return Aggregator(
        "db_mtl",
        params_shaped_state("db_mtl"),
        jacobian_only_weigh("db_mtl"),
        needs_gramian=False,
        combine=combine,
        init_with_params=init_with_params,
        modes=("full",),
    )

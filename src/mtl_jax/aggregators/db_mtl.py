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

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.gramian import weighted_sum
from mtl_jax.aggregators.jacobian_ops import at_least_float32, row_squared_norms, scale_rows, zeros_rows
from mtl_jax.aggregators.kinds import JacobianAggregator, JacobianUpdate, WeightingInputs
from mtl_jax.types import PyTree

DEFAULT_BETA = 0.9
DEFAULT_BETA_SIGMA = 0.0
LOSS_EPS = 1e-8


class DBMTLState(NamedTuple):
    """DB-MTL's moving averages of the log-loss gradients and its step count.

    Attributes:
      buffer: ĝ, a Jacobian pytree shaped like the shared parameters.
      count: k, the number of steps taken.
    """

    buffer: PyTree
    count: jax.Array


def db_mtl_update(
    jacobian: PyTree, losses: jax.Array, state: DBMTLState, beta: float, beta_sigma: float
) -> JacobianUpdate:
    """One DB-MTL step: (d, α, new state)."""
    count = state.count + 1
    beta_k = beta / count.astype(jnp.float32) ** beta_sigma
    log_grads = scale_rows(1.0 / (at_least_float32(losses) + LOSS_EPS), jacobian)
    buffer = jax.tree.map(
        lambda b, h: h.astype(b.dtype) + beta_k * (b - h.astype(b.dtype)), state.buffer, log_grads
    )
    norms = jnp.sqrt(row_squared_norms(buffer))
    scales = norms.max() / (norms + 1e-8)
    return JacobianUpdate(weighted_sum(scales, buffer), scales, DBMTLState(buffer=buffer, count=count))


def db_mtl(beta: float = DEFAULT_BETA, beta_sigma: float = DEFAULT_BETA_SIGMA) -> JacobianAggregator:
    """DB-MTL (Lin et al. 2023, beta=0.9): log-losses, EMA gradients rescaled to the largest norm (full mode only)."""
    if not 0.0 <= beta < 1.0 or beta_sigma < 0.0:
        raise ValueError(f"db_mtl needs 0 <= beta < 1 and beta_sigma >= 0, got {beta}, {beta_sigma}")

    def init(num_tasks: int, shared_params: PyTree) -> DBMTLState:
        return DBMTLState(buffer=zeros_rows(num_tasks, shared_params), count=jnp.zeros((), jnp.int32))

    def combine(jacobian: PyTree, inputs: WeightingInputs, state: DBMTLState):
        return db_mtl_update(jacobian, inputs.losses, state, beta, beta_sigma)

    return JacobianAggregator("db_mtl", init, combine, modes=("full",))

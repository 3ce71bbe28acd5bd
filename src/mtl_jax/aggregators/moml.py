"""MOML — multi-objective meta-learning of the task weights.

Ye, Lin, Yue, Guo, Xiao & Zhang, "Multi-Objective Meta Learning", NeurIPS 2021, Sec. 3 and
their MTL code (also the ``train_MOML`` of Lin et al.'s LibMTL-based FORUM code). MTL as a
bi-level problem whose upper level is *multi-objective*: the upper-level variables are the
logits α of the loss weights λ = softmax(α), the lower level trains the network on the
weighted loss,

    min_α ( L_1(θ*(α); B_meta), …, L_T(θ*(α); B_meta) )
    s.t.  θ*(α) = argmin_θ Σ_t softmax(α)_t L_t(θ; B_train),

with θ*(α) approximated by one gradient step of size η from θ,

    θ'(α) = θ − η ∇_θ Σ_s softmax(α)_s L_s(θ; B_train).                               (6)

Per step:
1. the T upper-level hypergradients h_t = ∇_α L_t(θ'(α); B_meta) ∈ R^T. θ' is linear in
   λ, so exactly (``mtl_jax.aggregators.lookahead``, eq. 2)

       h_t = −η (M J_σ)_t,   M_ts = ⟨∇L_t(θ'; B_meta), ∇L_s(θ; B_train)⟩,   J_σ = diag(λ) − λλᵀ,   (7)

   T backward passes at θ' and T JVPs of the training losses at θ (no Hessian);
2. the upper-level multi-objective step: MGDA's min-norm weights γ over the l2-normalised
   h_t (MOML's ``--MGDA`` with ``gradient_normalizers(..., 'l2')``), d_α = Σ_t γ_t h_t
   (``upper="mgda"``), or d_α = Σ_t h_t (``upper="sum"``, equal weighting);
3. α ← Adam(α, d_α) (lr 1e-3, the authors'); then the network's real step on
   Σ_t softmax(α)_t L_t(θ; B_train) with the new α.

Options: ``inner_learning_rate`` η (0.1, the authors' ``eta``), ``meta_learning_rate``
(1e-3), ``upper`` ("mgda" or "sum"). α starts at 1/T for every task (uniform λ). The step's
``weights`` metric is softmax(α) after step 3.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregators.kinds import MetaInputs, MetaUpdate, MetaWeighting
from mtl_jax.aggregators.lookahead import LossFn, cross_products, look_ahead, softmax_jacobian, task_gradients
from mtl_jax.aggregators.mgda import mgda_weights
from mtl_jax.types import PyTree

DEFAULT_INNER_LEARNING_RATE = 0.1
DEFAULT_META_LEARNING_RATE = 1e-3
UPPER_RULES = ("mgda", "sum")
NORM_FLOOR = 1e-12


class MOMLState(NamedTuple):
    """MOML's loss-weight logits and their Adam state.

    Attributes:
      logits: (T,) α, the weights are softmax(α).
      opt_state: the state of α's Adam optimiser.
    """

    logits: jax.Array
    opt_state: optax.OptState


def moml_hypergradients(
    loss_fn: LossFn, params: PyTree, batch: PyTree, meta_batch: PyTree, logits: jax.Array, inner_learning_rate: float
) -> tuple[jax.Array, jax.Array, object]:
    """(training losses, (T, T) rows h_t of eq. 7, the training losses' VJP at θ)."""
    losses, vjp_fn = jax.vjp(lambda p: loss_fn(p, batch), params)
    weights = jax.nn.softmax(jax.lax.stop_gradient(logits)).astype(losses.dtype)
    (inner,) = vjp_fn(weights)
    ahead = look_ahead(params, inner, inner_learning_rate)
    _, upper_rows = task_gradients(loss_fn, ahead, meta_batch)
    cross = cross_products(loss_fn, params, batch, upper_rows)  # M_ts
    return losses, -inner_learning_rate * cross @ softmax_jacobian(logits).astype(cross.dtype), vjp_fn


def upper_direction(hypergradients: jax.Array, rule: str) -> jax.Array:
    """d_α: Σ_t γ_t h_t with MGDA's γ on the l2-normalised h_t, or Σ_t h_t."""
    if rule == "sum":
        return hypergradients.sum(axis=0)
    norms = jnp.maximum(jnp.linalg.norm(hypergradients, axis=1), NORM_FLOOR)
    normalised = hypergradients / norms[:, None]
    gamma = mgda_weights(normalised @ normalised.T)
    return gamma @ hypergradients


def moml(
    inner_learning_rate: float = DEFAULT_INNER_LEARNING_RATE,
    meta_learning_rate: float = DEFAULT_META_LEARNING_RATE,
    upper: str = "mgda",
) -> MetaWeighting:
    """MOML (Ye et al. 2021, eta=0.1, meta lr=1e-3, upper=mgda): softmax loss weights, multi-objective meta-learned by look-ahead.

    Raises ValueError for a non-positive learning rate or an unknown ``upper`` rule.
    """
    if inner_learning_rate <= 0.0 or meta_learning_rate <= 0.0:
        raise ValueError(
            f"moml needs inner_learning_rate > 0 and meta_learning_rate > 0, got {inner_learning_rate}, {meta_learning_rate}"
        )
    if upper not in UPPER_RULES:
        raise ValueError(f"moml upper must be one of {', '.join(UPPER_RULES)}, got {upper!r}")
    optimizer = optax.adam(meta_learning_rate)

    def init(num_tasks: int) -> MOMLState:
        logits = jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32)
        return MOMLState(logits=logits, opt_state=optimizer.init(logits))

    def update(inputs: MetaInputs, state: MOMLState) -> MetaUpdate:
        losses, hypergradients, vjp_fn = moml_hypergradients(
            inputs.loss_fn, inputs.params, inputs.batch, inputs.meta_batch, state.logits, inner_learning_rate
        )
        direction = upper_direction(hypergradients, upper).astype(jnp.float32)
        updates, opt_state = optimizer.update(direction, state.opt_state, state.logits)
        logits = optax.apply_updates(state.logits, updates)
        weights = jax.nn.softmax(logits).astype(losses.dtype)
        (grads,) = vjp_fn(jax.lax.stop_gradient(weights))
        return MetaUpdate(grads, losses, weights, MOMLState(logits=logits, opt_state=opt_state))

    return MetaWeighting("moml", init, update)

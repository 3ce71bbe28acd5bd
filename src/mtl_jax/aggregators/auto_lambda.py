"""Auto-Lambda — task weights meta-learned through a look-ahead step.

Liu, Davison & Johns, "Auto-Lambda: Disentangling Dynamic Task Relationships", TMLR 2022,
Sec. 3. The task weights λ ∈ R^T (unconstrained, initialised to 0.1) are chosen so that one
virtual training step with them lowers the *primary* tasks' loss on other data:

    θ'(λ) = θ − α ∇_θ Σ_t λ_t L_t(θ; B_train),                                      (3)
    λ ← λ − β ∇_λ Σ_{t ∈ P} L_t(θ'(λ); B_meta),                                    (4)

then the network takes its real step on Σ_t λ_t L_t(θ; B_train) with the new λ. P is the set
of primary tasks (all of them in multi-task learning; the non-auxiliary ones in auxiliary
learning). β is the step of an Adam optimiser (the paper's: lr 1e-4).

The hypergradient. The authors approximate the Hessian-vector product of (4) by a finite
difference (their ``compute_hessian``, ε = 0.01/‖∇L'‖). Here it is **exact**, by JAX
autodiff: θ' is linear in λ, so with v = ∇_θ' Σ_{t∈P} L_t(θ'; B_meta),

    ∂/∂λ_s Σ_{t∈P} L_t(θ'(λ); B_meta) = −α ⟨v, ∇_θ L_s(θ; B_train)⟩                  (5)

— one backward pass at θ' and one JVP of the training losses at θ along v
(``mtl_jax.aggregators.lookahead``, eq. 2). The virtual step (3) is a plain gradient step of
size α on every parameter (the authors also fold in SGD momentum and weight decay; ours has
no access to the optimiser's state). B_meta is a second batch of the training split in
another order, as in the authors' code (``mtl_jax.data.meta``).

Options: ``initial_weight`` (0.1), ``meta_learning_rate`` β (1e-4), ``inner_learning_rate``
α (the model's learning rate in the authors' code: set it to yours; default 0.1), and
``primary`` (task indices in the step's order; default all tasks). The step's ``weights``
metric is λ after update (4).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregators.kinds import MetaInputs, MetaUpdate, MetaWeighting
from mtl_jax.aggregators.lookahead import LossFn, directional_losses, look_ahead
from mtl_jax.types import PyTree

DEFAULT_INITIAL_WEIGHT = 0.1
DEFAULT_META_LEARNING_RATE = 1e-4
DEFAULT_INNER_LEARNING_RATE = 0.1


class AutoLambdaState(NamedTuple):
    """Auto-Lambda's task weights and their Adam state.

    Attributes:
      opt_state: the state of λ's Adam optimiser.
      weights: (T,) λ.
    """

    opt_state: optax.OptState
    weights: jax.Array


def primary_mask(primary: Sequence[int] | None, num_tasks: int) -> jax.Array:
    """(T,) 1 on the primary tasks (every task when ``primary`` is None), else 0.

    Raises ValueError for an empty, repeated or out-of-range ``primary``."""
    if primary is None:
        return jnp.ones((num_tasks,), jnp.float32)
    indices = tuple(primary)
    if not indices or len(set(indices)) != len(indices):
        raise ValueError(f"auto_lambda needs distinct primary task indices, got {list(indices)}")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_tasks for i in indices):
        raise ValueError(f"auto_lambda primary {list(indices)} must be task indices in [0, {num_tasks})")
    return jnp.zeros((num_tasks,), jnp.float32).at[jnp.asarray(indices)].set(1.0)


def auto_lambda_hypergradient(
    loss_fn: LossFn, params: PyTree, batch: PyTree, meta_batch: PyTree,
    weights: jax.Array, mask: jax.Array, inner_learning_rate: float,
) -> tuple[jax.Array, jax.Array, object]:
    """(training losses, ∇_λ of (4) by eq. 5, the training losses' VJP at θ)."""
    losses, vjp_fn = jax.vjp(lambda p: loss_fn(p, batch), params)
    (inner,) = vjp_fn(jax.lax.stop_gradient(weights).astype(losses.dtype))
    ahead = look_ahead(params, inner, inner_learning_rate)
    meta_grad = jax.grad(lambda p: jnp.dot(mask.astype(losses.dtype), loss_fn(p, meta_batch)))(ahead)
    hypergradient = -inner_learning_rate * directional_losses(loss_fn, params, batch, meta_grad)
    return losses, hypergradient, vjp_fn


def auto_lambda(
    initial_weight: float = DEFAULT_INITIAL_WEIGHT,
    meta_learning_rate: float = DEFAULT_META_LEARNING_RATE,
    inner_learning_rate: float = DEFAULT_INNER_LEARNING_RATE,
    primary: Sequence[int] | None = None,
) -> MetaWeighting:
    """Auto-Lambda (Liu et al. 2022, λ0=0.1, meta lr=1e-4, exact hypergradient): weights meta-learned through a look-ahead step.

    Raises ValueError for a non-positive learning rate or an unusable ``primary``.
    """
    if meta_learning_rate <= 0.0 or inner_learning_rate <= 0.0:
        raise ValueError(
            f"auto_lambda needs meta_learning_rate > 0 and inner_learning_rate > 0, got"
            f" {meta_learning_rate}, {inner_learning_rate}"
        )
    if primary is not None and (isinstance(primary, (str, bytes)) or not isinstance(primary, Sequence)):
        raise ValueError(f"auto_lambda needs primary as a list of task indices, got {primary!r}")
    optimizer = optax.adam(meta_learning_rate)

    def init(num_tasks: int) -> AutoLambdaState:
        primary_mask(primary, num_tasks)  # checks the indices against the task count
        weights = jnp.full((num_tasks,), initial_weight, jnp.float32)
        return AutoLambdaState(opt_state=optimizer.init(weights), weights=weights)

    def update(inputs: MetaInputs, state: AutoLambdaState) -> MetaUpdate:
        mask = primary_mask(primary, state.weights.shape[0])
        losses, hypergradient, vjp_fn = auto_lambda_hypergradient(
            inputs.loss_fn, inputs.params, inputs.batch, inputs.meta_batch, state.weights, mask, inner_learning_rate
        )
        updates, opt_state = optimizer.update(hypergradient.astype(jnp.float32), state.opt_state, state.weights)
        weights = optax.apply_updates(state.weights, updates)
        (grads,) = vjp_fn(jax.lax.stop_gradient(weights).astype(losses.dtype))
        return MetaUpdate(grads, losses, weights.astype(losses.dtype), AutoLambdaState(opt_state, weights))

    return MetaWeighting("auto_lambda", init, update)

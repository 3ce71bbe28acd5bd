"""FAMO — "FAMO: Fast Adaptive Multitask Optimization", Liu et al., NeurIPS
2023, Sec. 3 and Algorithm 1. Hyper-parameters (the paper's): the logits' learning rate
β = 0.025 and weight decay γ = 1e-3.

Task weights z = softmax(ξ) of logits ξ (state, started at 0). The update descends the
z-weighted log-losses, normalised so that the weights sum to 1:

    d = Σ_t w_t g_t,      w_t = (z_t / L_t) / Σ_s (z_s / L_s)    (L_t + 1e-8, as the authors).

After the parameter update FAMO measures every task's log-loss decrease
δ_t = log L_t(θ_k) − log L_t(θ_{k+1}) and moves ξ against the improvement it caused:
ξ ← Adam step on the gradient (∂z/∂ξ)ᵀ δ = z ⊙ (δ − (zᵀδ)·1), with L2 weight decay γ ξ
added to the gradient (the authors use ``torch.optim.Adam(lr=β, weight_decay=γ)``; here
``optax.chain(add_decayed_weights(γ), adam(β))``, the same update).

**Deviation:** the authors evaluate L(θ_{k+1}) with a second forward pass on the same batch.
To keep one forward per step, δ here compares this step's losses (θ_{k+1}, new batch) with
the previous step's (θ_k, previous batch), so the ξ update is delayed by one step and
includes the batch-to-batch noise. The state holds ξ, the Adam state and the last log-losses.
A loss-level weighting: no Jacobian.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregators.kinds import LossWeighting, WeightingInputs

DEFAULT_LEARNING_RATE = 0.025
DEFAULT_WEIGHT_DECAY = 1e-3
LOSS_EPS = 1e-8


class FAMOState(NamedTuple):
    """FAMO's logits, their optimiser state and the last step's log-losses.

    Attributes:
      count: 0 before the first step, then 1.
      logits: (T,) ξ, the weights are softmax(ξ).
      opt_state: the state of the logits' optimiser.
      previous_log_losses: (T,) the last step's log-losses.
    """

    count: jax.Array
    logits: jax.Array
    opt_state: optax.OptState
    previous_log_losses: jax.Array


def logit_optimizer(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """Adam with L2 weight decay added to the gradient (torch Adam's ``weight_decay``)."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def famo_weights(logits: jax.Array, losses: jax.Array) -> jax.Array:
    """w_t = (z_t / L_t) / Σ_s (z_s / L_s), z = softmax(ξ)."""
    ratios = jax.nn.softmax(logits) / (losses + LOSS_EPS)
    return ratios / ratios.sum()


def softmax_vjp(logits: jax.Array, cotangent: jax.Array) -> jax.Array:
    """(∂ softmax(ξ)/∂ξ)ᵀ δ = z ⊙ (δ − zᵀδ)."""
    z = jax.nn.softmax(logits)
    return z * (cotangent - jnp.dot(z, cotangent))


def famo(
    learning_rate: float = DEFAULT_LEARNING_RATE, weight_decay: float = DEFAULT_WEIGHT_DECAY
) -> LossWeighting:
    """FAMO (Liu et al. 2023, lr=0.025, decay=1e-3): softmax logits balancing log-loss decreases."""
    if learning_rate <= 0.0 or weight_decay < 0.0:
        raise ValueError(f"famo needs learning_rate > 0 and weight_decay >= 0, got {learning_rate}, {weight_decay}")
    optimizer = logit_optimizer(learning_rate, weight_decay)

    def init(num_tasks: int) -> FAMOState:
        logits = jnp.zeros((num_tasks,), jnp.float32)
        return FAMOState(
            logits=logits,
            opt_state=optimizer.init(logits),
            previous_log_losses=jnp.zeros((num_tasks,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def weigh(inputs: WeightingInputs, state: FAMOState):
        log_losses = jnp.log(inputs.losses.astype(jnp.float32) + LOSS_EPS)
        decrease = state.previous_log_losses - log_losses
        gradient = softmax_vjp(state.logits, decrease)
        updates, opt_state = optimizer.update(gradient, state.opt_state, state.logits)
        started = state.count > 0
        logits = jnp.where(started, optax.apply_updates(state.logits, updates), state.logits)
        opt_state = jax.tree.map(lambda new, old: jnp.where(started, new, old), opt_state, state.opt_state)
        weights = famo_weights(logits, inputs.losses.astype(jnp.float32))
        new_state = FAMOState(
            logits=logits,
            opt_state=opt_state,
            previous_log_losses=log_losses,
            count=jnp.minimum(state.count + 1, 1),
        )
        return weights.astype(inputs.losses.dtype), new_state

    return LossWeighting("famo", init, weigh)

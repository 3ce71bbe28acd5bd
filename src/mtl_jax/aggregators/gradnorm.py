"""GradNorm — "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep Multitask
Networks", Chen et al., ICML 2018, Sec. 3 and Algorithm 1. Hyper-parameters:
the restoring strength α (default 1.5, the paper's NYUv2 value and LibMTL's default) and the
learning rate of the weights (default 0.025; ours — the paper trains w with the network's
optimiser).

With learnable weights w_t (state, started at 1), G_t = ‖w_t ∇_W L_t‖ = w_t √(G_tt) from the
Gramian diagonal, Ḡ = mean_t G_t, the inverse training rates r_t = L̃_t / mean_s L̃_s with
L̃_t = L_t / L_t(0), the gradient loss is

    L_grad = Σ_t | G_t − Ḡ · r_t^α |,

with the target Ḡ·r_t^α held constant. One inner gradient-descent step per train step

    w_t ← w_t − lr · sign(G_t − Ḡ r_t^α) · √(G_tt),

then w is clipped at 0 and renormalised to Σ_t w_t = T (Algorithm 1). The step uses the
weights from before the update: d = Jᵀw. L(0) are the losses of the first step.

**Deviation:** W is the whole shared-parameter vector (full mode) or the shared representation
(representation mode) — not the last shared layer of the paper; ‖w_t g_t‖ comes from the
Gramian diagonal that the step computes anyway.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs

DEFAULT_ALPHA = 1.5
DEFAULT_LEARNING_RATE = 0.025


class GradNormState(NamedTuple):
    """GradNorm's learnable weights and the first step's losses.

    Attributes:
      count: the number of steps seen.
      initial_losses: (T,) L(0), set on the first step.
      weights: (T,) the task weights w_t (Σ w = T).
    """

    count: jax.Array
    initial_losses: jax.Array
    weights: jax.Array


def gradnorm_update(
    gramian: jax.Array, losses: jax.Array, state: GradNormState, alpha: float, learning_rate: float
) -> tuple[jax.Array, GradNormState]:
    """(weights used this step, new state)."""
    weights = state.weights.astype(gramian.dtype)
    losses = losses.astype(gramian.dtype)
    initial = jnp.where(state.count == 0, losses, state.initial_losses.astype(gramian.dtype))
    norms = jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))
    weighted_norms = weights * norms
    relative = losses / jnp.where(initial > 0, initial, 1.0)
    rates = relative / jnp.maximum(relative.mean(), jnp.finfo(gramian.dtype).tiny)
    target = jax.lax.stop_gradient(weighted_norms.mean() * rates**alpha)
    stepped = jnp.maximum(weights - learning_rate * jnp.sign(weighted_norms - target) * norms, 0.0)
    total = stepped.sum()
    num_tasks = weights.shape[0]
    renormalised = jnp.where(total > 0, num_tasks * stepped / jnp.where(total > 0, total, 1.0), 1.0)
    new_state = GradNormState(
        weights=renormalised.astype(state.weights.dtype),
        initial_losses=initial.astype(state.initial_losses.dtype),
        count=state.count + 1,
    )
    return weights, new_state


def gradnorm(alpha: float = DEFAULT_ALPHA, learning_rate: float = DEFAULT_LEARNING_RATE) -> GramianWeighting:
    """GradNorm (Chen et al. 2018, alpha=1.5, lr=0.025): learnable weights equalising weighted gradient norms."""
    if alpha < 0.0 or learning_rate <= 0.0:
        raise ValueError(f"gradnorm needs alpha >= 0 and learning_rate > 0, got {alpha}, {learning_rate}")

    def init(num_tasks: int) -> GradNormState:
        return GradNormState(
            weights=jnp.ones((num_tasks,), jnp.float32),
            initial_losses=jnp.ones((num_tasks,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def weigh(inputs: WeightingInputs, state: GradNormState):
        return gradnorm_update(inputs.gramian, inputs.losses, state, alpha, learning_rate)

    return GramianWeighting("gradnorm", init, weigh)

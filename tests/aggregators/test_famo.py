"""FAMO (Liu et al. 2023): logits ξ updated by Adam (with L2 decay) on (∂z/∂ξ)ᵀδ, δ the
log-loss decrease; weights z_t/L_t normalised — logits and weights against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.famo import famo
from tests.aggregators.loss_harness import random_losses, weigh_steps

NUM_STEPS = 6


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def reference(losses: list[np.ndarray], lr: float, decay: float):
    """Algorithm 1 of the paper with the decrease measured between consecutive steps."""
    num_tasks = len(losses[0])
    xi, m, v, t = np.zeros(num_tasks), np.zeros(num_tasks), np.zeros(num_tasks), 0
    weights, logits, previous = [], [], None
    for step_losses in losses:
        log_losses = np.log(step_losses + 1e-8)
        if previous is not None:
            delta = previous - log_losses
            z = softmax(xi)
            jac = np.diag(z) - np.outer(z, z)  # ∂z/∂ξ (symmetric)
            g = jac.T @ delta + decay * xi
            t += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            xi = xi - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        ratios = softmax(xi) / (step_losses + 1e-8)
        weights.append(ratios / ratios.sum())
        logits.append(xi.copy())
        previous = log_losses
    return weights, logits


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
@pytest.mark.parametrize("lr,decay", [(0.025, 1e-3), (0.3, 0.1)])
def test_trajectory(rng, num_tasks, lr, decay):
    losses = random_losses(rng, NUM_STEPS, num_tasks)
    weights, states = weigh_steps(famo(lr, decay), losses)
    weights_ref, logits_ref = reference(losses, lr, decay)
    for w, state, w_ref, xi_ref in zip(weights, states, weights_ref, logits_ref):
        np.testing.assert_allclose(state.logits, xi_ref, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(w, w_ref, rtol=1e-4)
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)


def test_task_that_improves_less_gains_weight():
    losses = [np.array([1.0, 1.0]), np.array([0.5, 0.99]), np.array([0.5, 0.99])]
    _, states = weigh_steps(famo(0.1), losses)
    logits = states[1].logits
    assert logits[1] > logits[0]  # task 1 barely improved: its logit grows
    with pytest.raises(ValueError, match="learning_rate"):
        famo(0.0)

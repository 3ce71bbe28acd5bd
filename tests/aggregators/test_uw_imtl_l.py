"""UW (Kendall et al. 2018) and IMTL-L (Liu et al. 2021): learnable loss scales with one inner
gradient step per train step — weights and scale trajectories against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.imtl_l import imtl_l
from mtl_jax.aggregators.uw import uw
from tests.aggregators.loss_harness import random_losses, weigh_steps

NUM_STEPS = 6


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
def test_uw_trajectory(rng, num_tasks):
    lr, s0 = 0.3, rng.normal()
    losses = random_losses(rng, NUM_STEPS, num_tasks)
    weights, states = weigh_steps(uw(lr, s0), losses)
    s = np.full(num_tasks, s0)
    for step_losses, w, state in zip(losses, weights, states):
        np.testing.assert_allclose(w, 0.5 * np.exp(-s), rtol=1e-5)
        # ∂/∂s [½ e^{−s} L + ½ s] = ½ (1 − e^{−s} L)
        s = s - lr * 0.5 * (1.0 - np.exp(-s) * step_losses)
        np.testing.assert_allclose(state.log_variances, s, rtol=1e-5, atol=1e-6)


def test_uw_converges_to_log_loss(rng):
    """The fixed point of the inner step is σ² = e^s = L: constant losses pull s to log L."""
    losses = np.exp(rng.uniform(-1, 1, 3))
    _, states = weigh_steps(uw(0.5), [losses] * 300)
    np.testing.assert_allclose(states[-1].log_variances, np.log(losses), atol=1e-3)


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
def test_imtl_l_trajectory(rng, num_tasks):
    lr = 0.1
    losses = random_losses(rng, NUM_STEPS, num_tasks)
    weights, states = weigh_steps(imtl_l(lr), losses)
    s = np.zeros(num_tasks)
    for step_losses, w, state in zip(losses, weights, states):
        np.testing.assert_allclose(w, np.exp(s), rtol=1e-5)
        s = s - lr * (np.exp(s) * step_losses - 1.0)  # ∂/∂s [e^s L − s]
        np.testing.assert_allclose(state.log_scales, s, rtol=1e-5, atol=1e-6)


def test_imtl_l_equalises_scaled_losses(rng):
    losses = np.exp(rng.uniform(-1, 1, 4))
    weights, _ = weigh_steps(imtl_l(0.3), [losses] * 300)
    np.testing.assert_allclose(weights[-1] * losses, 1.0, atol=1e-3)


def test_bad_learning_rates_are_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        uw(0.0)
    with pytest.raises(ValueError, match="learning_rate"):
        imtl_l(-1.0)

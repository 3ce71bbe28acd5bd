"""STCH (Lin et al. 2024): warm-up log-loss weights while the nadir is averaged, then the
gradient of T·μ log Σ exp(log(L/n)/μ) with respect to the losses, checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.stch import stch
from tests.aggregators.loss_harness import random_losses, weigh_steps

WARMUP = 3


def smooth_tchebycheff(losses: np.ndarray, nadir: np.ndarray, mu: float) -> float:
    objectives = np.log(losses / nadir + 1e-8)
    top = objectives.max()
    return len(losses) * (top + mu * np.log(np.sum(np.exp((objectives - top) / mu))))


def numeric_gradient(f, x: np.ndarray, h: float = 1e-7) -> np.ndarray:
    return np.array([(f(x + h * x_i * e) - f(x - h * x_i * e)) / (2 * h * x_i) for x_i, e in zip(x, np.eye(len(x)))])


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
@pytest.mark.parametrize("mu", [1.0, 0.1])
def test_trajectory(rng, num_tasks, mu):
    losses = random_losses(rng, WARMUP + 4, num_tasks)
    weights, states = weigh_steps(stch(mu, WARMUP), losses)
    nadir = np.mean(losses[:WARMUP], axis=0)
    for k, (step_losses, w) in enumerate(zip(losses, weights)):
        if k < WARMUP:
            expected = numeric_gradient(lambda x: np.sum(np.log(x + 1e-8)), step_losses)
        else:
            expected = numeric_gradient(lambda x: smooth_tchebycheff(x, nadir, mu), step_losses)
        np.testing.assert_allclose(w, expected, rtol=1e-4)
    np.testing.assert_allclose(states[-1].loss_sum / WARMUP, nadir, rtol=1e-6)


def test_small_mu_concentrates_on_the_worst_task():
    losses = [np.array([1.0, 1.0, 1.0]), np.array([0.5, 2.0, 1.0])]
    weights, _ = weigh_steps(stch(0.01, 1), losses)
    scaled = weights[1] * losses[1]  # w_t L_t = T softmax_t
    np.testing.assert_allclose(scaled, [0.0, 3.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="warmup_steps"):
        stch(1.0, 0)

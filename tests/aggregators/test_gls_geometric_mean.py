"""GLS (Chennupati et al. 2019) and the mean log-loss: the weights are the gradients of the
scalarised loss with respect to the task losses, checked by finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.geometric_mean import geometric_mean
from mtl_jax.aggregators.gls import gls
from tests.aggregators.loss_harness import random_losses, weigh_steps


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


@pytest.mark.parametrize("num_tasks", [1, 2, 5, 8])
def test_gls_weights_are_the_gradient_of_the_geometric_mean(rng, num_tasks):
    losses = random_losses(rng, 3, num_tasks)
    weights, _ = weigh_steps(gls(), losses)
    for step_losses, w in zip(losses, weights):
        expected = numeric_gradient(lambda x: np.prod(x) ** (1.0 / num_tasks), step_losses)
        np.testing.assert_allclose(w, expected, rtol=1e-5)


@pytest.mark.parametrize("num_tasks", [1, 2, 5, 8])
def test_geometric_mean_weights_are_the_gradient_of_the_mean_log(rng, num_tasks):
    losses = random_losses(rng, 3, num_tasks)
    weights, _ = weigh_steps(geometric_mean(), losses)
    for step_losses, w in zip(losses, weights):
        expected = numeric_gradient(lambda x: np.mean(np.log(x)), step_losses)
        np.testing.assert_allclose(w, expected, rtol=1e-5)


def test_scale_invariance_and_zero_loss(rng):
    """Scaling one loss scales its weight inversely (w_t L_t is invariant); L = 0 stays finite."""
    losses = random_losses(rng, 1, 3)[0]
    scaled = losses * np.array([1.0, 10.0, 1.0])
    (w,), _ = weigh_steps(geometric_mean(), [losses])
    (w_scaled,), _ = weigh_steps(geometric_mean(), [scaled])
    np.testing.assert_allclose(w * losses, w_scaled * scaled, rtol=1e-6)
    (w_zero,), _ = weigh_steps(gls(), [np.array([0.0, 1.0, 2.0])])
    assert np.all(np.isfinite(w_zero))

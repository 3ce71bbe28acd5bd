"""GradNorm (Chen et al. 2018): |w_t ‖g_t‖ − mean(w‖g‖) r_t^α| descended by one inner step,
weights renormalised to Σw = T — the weight trajectory against NumPy on explicit gradients."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.gradnorm import gradnorm
from tests.aggregators.jacobians import jacobian_cases, random_jacobian, with_parallel_rows, with_zero_row
from tests.aggregators.loss_harness import random_losses, weigh_steps

NUM_STEPS = 5


def reference(jacobians, losses, alpha, lr):
    num_tasks = len(losses[0])
    w, initial, out = np.ones(num_tasks), losses[0], []
    for jac, step_losses in zip(jacobians, losses):
        out.append(w.copy())
        norms = np.linalg.norm(jac, axis=1)
        weighted = w * norms
        relative = step_losses / initial
        target = weighted.mean() * (relative / relative.mean()) ** alpha
        gradient = np.sign(weighted - target) * norms  # ∂/∂w_t |w_t ‖g_t‖ − target_t|
        w = np.maximum(w - lr * gradient, 0.0)
        w = num_tasks * w / w.sum()
    return out


@pytest.mark.parametrize(("make", "num_tasks"), jacobian_cases([random_jacobian, with_zero_row, with_parallel_rows], [1, 2, 5]))
def test_trajectory(rng, make, num_tasks):
    jacobians = [make(rng, num_tasks) / 5.0 for _ in range(NUM_STEPS)]
    losses = random_losses(rng, NUM_STEPS, num_tasks)
    weights, states = weigh_steps(gradnorm(1.5, 0.05), losses, jacobians)
    for w, w_ref in zip(weights, reference(jacobians, losses, 1.5, 0.05)):
        np.testing.assert_allclose(w, w_ref, rtol=1e-5)
    np.testing.assert_allclose(states[-1].initial_losses, losses[0], rtol=1e-6)


def test_weights_move_towards_equal_weighted_norms(rng):
    """Same losses every step (r = 1): the target is the mean weighted norm; small-norm tasks
    gain weight until w_t‖g_t‖ are (nearly) equal."""
    jac = np.stack([rng.standard_normal(50) * s for s in (0.2, 0.4, 0.6)]) / 7.0
    weights, _ = weigh_steps(gradnorm(1.5, 0.01), [np.ones(3)] * 400, [jac] * 400)
    weighted = weights[-1] * np.linalg.norm(jac, axis=1)
    assert weighted.std() / weighted.mean() < 0.05

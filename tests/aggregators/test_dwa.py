"""DWA (Liu et al. 2019): w(k) = T softmax(r(k−1)/T_w), r = L(k−1)/L(k−2), 1 for two steps."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.aggregators.dwa import dwa
from tests.aggregators.loss_harness import random_losses, weigh_steps


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_trajectory(rng, num_tasks, temperature):
    losses = random_losses(rng, 7, num_tasks)
    weights, _ = weigh_steps(dwa(temperature), losses)
    for k, w in enumerate(weights):
        if k < 2:
            expected = np.ones(num_tasks)
        else:
            ratios = losses[k - 1] / losses[k - 2]
            expected = num_tasks * np.exp(ratios / temperature) / np.exp(ratios / temperature).sum()
        np.testing.assert_allclose(w, expected, rtol=1e-5)
        np.testing.assert_allclose(w.sum(), num_tasks, rtol=1e-5)


def test_slower_task_gets_more_weight(rng):
    losses = [np.array([1.0, 1.0]), np.array([0.99, 0.5]), np.array([0.5, 0.5])]
    weights, _ = weigh_steps(dwa(), losses)
    assert weights[2][0] > 1.0 > weights[2][1]
    with pytest.raises(ValueError, match="temperature"):
        dwa(0.0)

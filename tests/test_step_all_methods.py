"""Every registered aggregator runs inside the compiled step, in both modes, with its state."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mtl_jax.aggregators import REGISTRY
from tests.helpers import random_batch, run_steps, small_model

NUM_TASKS = 5  # Krum with f=1 needs T >= 5


@pytest.mark.parametrize("mode", ["full", "representation"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_method_trains_in_the_step(rng, name, mode):
    model, params = small_model(NUM_TASKS)
    batches = [random_batch(rng, 16, NUM_TASKS) for _ in range(3)]
    state, metrics = run_steps(model, params, batches, name, mode, optimizer=None)
    assert int(state.step) == 3
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(jax.device_get(state.params)))
    assert all(np.all(np.isfinite(m["weights"])) and m["weights"].shape == (NUM_TASKS,) for m in metrics)
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
             zip(jax.tree.leaves(params["shared"]), jax.tree.leaves(state.params["shared"]))]
    assert max(moved) > 0, f"{name} never updated the shared parameters"

"""Train Auto-Lambda, MOML and FORUM 2 steps on 1 and on 4 simulated CPU devices, each batch
carrying its meta batch (run as a subprocess).

Usage: python -m tests.multidevice_meta_methods OUT.npz — saves every parameter and
aggregator-state leaf and the losses and weights as ``<method>/<leaf>@<devices>``.
XLA_FLAGS must be set before JAX is imported.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mtl_jax.aggregators.auto_lambda import auto_lambda  # noqa: E402
from mtl_jax.aggregators.forum import forum  # noqa: E402
from mtl_jax.aggregators.moml import moml  # noqa: E402
from mtl_jax.data.meta import with_meta  # noqa: E402
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate  # noqa: E402
from tests.helpers import random_batch, small_model  # noqa: E402

NUM_TASKS, GLOBAL_BATCH, STEPS = 3, 16, 2
CASES = {
    "auto_lambda": lambda: auto_lambda(meta_learning_rate=0.05, primary=[0, 2]),
    "moml": lambda: moml(meta_learning_rate=0.05),
    "forum": lambda: forum(inner_steps=2, solver_iterations=100),
}


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(7)
    batches = [with_meta(random_batch(rng, GLOBAL_BATCH, NUM_TASKS), random_batch(rng, GLOBAL_BATCH, NUM_TASKS))
               for _ in range(STEPS)]  # fmt: skip
    results = {}
    for name, make in CASES.items():
        for count in (1, 4):
            model, params = small_model(NUM_TASKS, hidden=(8,))
            aggregator, optimizer = make(), optax.sgd(0.3)
            mesh = data_mesh(jax.devices()[:count])
            state = replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, 0), mesh)
            step = make_train_step(model, aggregator, optimizer, mesh, gradient_stats=False)
            losses, weights = [], []
            for batch in batches:
                state, metrics = step(state, batch)
                losses.append(np.asarray(metrics["loss"]))
                weights.append(np.asarray(metrics["weights"]))
            final = jax.device_get({"params": state.params, "aggregator": state.aggregator_state})
            for path, leaf in jax.tree_util.tree_flatten_with_path(final)[0]:
                results[f"{name}/{jax.tree_util.keystr(path)}@{count}"] = np.asarray(leaf)
            results[f"{name}/loss@{count}"] = np.stack(losses)
            results[f"{name}/weights@{count}"] = np.stack(weights)
    np.savez(sys.argv[1], **results)


if __name__ == "__main__":
    main()

"""Train 5 steps on N simulated CPU devices and save the parameters (run as a subprocess).

Usage: python -m tests.multidevice_run NUM_DEVICES OUT.npz
XLA_FLAGS must be set before JAX is imported, hence a separate process per device count.
"""

from __future__ import annotations

import os
import sys

NUM_DEVICES = int(sys.argv[1])
os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={NUM_DEVICES}"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from tests.helpers import random_batch, run_steps, small_model  # noqa: E402

# name: (aggregator, mode, gradient statistics) — MoCo is Jacobian-level with T×P state; FAMO
# is a loss-level weighting on the one-backward fast path (statistics off).
CASES = {
    "ew": ("sum", "full", True),
    "pcgrad": ("pcgrad", "full", True),
    "pcgrad_rep": ("pcgrad", "representation", True),
    "moco": ("moco", "full", True),
    "famo_rep": ("famo", "representation", False),
}
NUM_TASKS, GLOBAL_BATCH, STEPS = 4, 64, 5


def main() -> None:
    assert jax.device_count() == NUM_DEVICES, jax.devices()
    rng = np.random.default_rng(1234)
    batches = [random_batch(rng, GLOBAL_BATCH, NUM_TASKS, in_features=32) for _ in range(STEPS)]
    results = {}
    for name, (aggregator, mode, stats) in CASES.items():
        model, params = small_model(NUM_TASKS, in_features=32, hidden=(64, 64))
        optimizer = optax.sgd(0.1, momentum=0.9)
        state, metrics = run_steps(
            model, params, batches, aggregator, mode, optimizer=optimizer, gradient_stats=stats
        )
        leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
        for path, leaf in leaves:
            results[f"{name}/{jax.tree_util.keystr(path)}"] = leaf
        results[f"{name}/loss"] = np.stack([m["loss"] for m in metrics])
    np.savez(sys.argv[2], **results)


if __name__ == "__main__":
    main()

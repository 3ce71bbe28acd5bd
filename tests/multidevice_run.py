"""Train 5 steps on 1, 4 and 8 of 8 simulated CPU devices and save the parameters (run as a
subprocess: XLA_FLAGS must be set before JAX is imported). One process serves every device
count: a mesh over the first N devices is an N-device step.

Usage: python -m tests.multidevice_run OUT.npz — saves ``<devices>/<case>/<leaf>`` and
``<devices>/<case>/loss``.
"""

from __future__ import annotations

import os
import sys

DEVICE_COUNTS = (1, 4, 8)
os.environ["XLA_FLAGS"] = (
    f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={max(DEVICE_COUNTS)}"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mtl_jax.aggregators import get_aggregator  # noqa: E402
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate  # noqa: E402
from tests.helpers import random_batch, small_model  # noqa: E402

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


def train(name: str, count: int, batches: list[dict]) -> dict[str, np.ndarray]:
    """The parameters after training ``CASES[name]`` on the first ``count`` devices, and the losses."""
    aggregator_name, mode, stats = CASES[name]
    model, params = small_model(NUM_TASKS, in_features=32, hidden=(64, 64))
    aggregator, optimizer = get_aggregator(aggregator_name), optax.sgd(0.1, momentum=0.9)
    mesh = data_mesh(jax.devices()[:count])
    state = replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, 0), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, mode=mode, gradient_stats=stats)
    losses = []
    for batch in batches:
        state, metrics = step(state, batch)
        losses.append(np.asarray(metrics["loss"]))
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
    results = {f"{count}/{name}/{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}
    results[f"{count}/{name}/loss"] = np.stack(losses)
    return results


def main() -> None:
    assert jax.device_count() == max(DEVICE_COUNTS), jax.devices()
    rng = np.random.default_rng(1234)
    batches = [random_batch(rng, GLOBAL_BATCH, NUM_TASKS, in_features=32) for _ in range(STEPS)]
    results = {}
    for name in CASES:
        for count in DEVICE_COUNTS:
            results.update(train(name, count, batches))
    np.savez(sys.argv[1], **results)


if __name__ == "__main__":
    main()

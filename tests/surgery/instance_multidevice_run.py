"""Instance-mode train steps on N simulated CPU devices (run as a subprocess by
``tests/surgery/test_instance_mode.py``; with no arguments, in-process on the local devices).

Usage: python -m tests.surgery.instance_multidevice_run NUM_DEVICES OUT.npz
XLA_FLAGS must be set before JAX is imported, so this module sets it from its arguments.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={int(sys.argv[1])}"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mtl_jax.aggregators import get_aggregator  # noqa: E402
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate  # noqa: E402
from mtl_jax.types import mask_key  # noqa: E402
from tests.helpers import random_batch, small_model  # noqa: E402

# UPGrad is checked on one device (test_instance_mode.py); on 4 simulated CPU devices its
# (B·T)-row active-set solves hang the XLA CPU runtime now and then (no collective inside the
# loop; a runtime deadlock, not a divergence), so the multi-device check uses CAGrad's QP.
METHODS = ("cagrad", "pcgrad")
NUM_TASKS = 3
GLOBAL_BATCH = 8
STEPS = 2


def batches() -> list[dict]:
    """Fixed random global batches; task 1 is absent from examples 2 and 5 (off device 0)."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(STEPS):
        batch = random_batch(rng, GLOBAL_BATCH, NUM_TASKS)
        mask = np.ones(GLOBAL_BATCH, bool)
        mask[[2, 5]] = False
        batch[mask_key("task1")] = mask
        out.append(batch)
    return out


def run() -> dict[str, np.ndarray]:
    """{method/leaf path or method/metric: value} after ``STEPS`` instance-mode steps."""
    model, params = small_model(NUM_TASKS, hidden=(16, 32))  # F = 32 ≥ B·T = 24: unique weights
    results = {}
    for method in METHODS:
        aggregator, optimizer = get_aggregator(method), optax.sgd(0.1)
        mesh = data_mesh()
        state = replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, 3), mesh)
        step = make_train_step(model, aggregator, optimizer, mesh, mode="instance", gradient_stats=True)
        for batch in batches():
            state, metrics = step(state, batch)
        for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]:
            results[f"{method}/{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
        for name in ("weights", "grad_cosine"):
            results[f"{method}/{name}"] = np.asarray(metrics[name])
    return results


def main() -> None:
    assert jax.device_count() == int(sys.argv[1]), jax.devices()
    np.savez(sys.argv[2], **run())


if __name__ == "__main__":
    main()

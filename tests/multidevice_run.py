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

from tests.helpers import flat_params, random_batch, run_steps, small_model  # noqa: E402

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
    state, metrics = run_steps(model, params, batches, aggregator_name, mode,
                               optax.sgd(0.1, momentum=0.9), devices=jax.devices()[:count], gradient_stats=stats)
    results = {f"{count}/{name}/{path}": leaf for path, leaf in flat_params(state.params).items()}
    results[f"{count}/{name}/loss"] = np.stack([np.asarray(m["loss"]) for m in metrics])
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

"""The Gramian-engine checks on N simulated CPU devices (run as a subprocess).

Usage: python -m tests.surgery.engine_multidevice_run NUM_DEVICES OUT.npz
Saves the engine-vs-Jacobian errors per case and the parameters after real steps with and
without the engine; XLA_FLAGS must be set before JAX is imported.
"""

from __future__ import annotations

import os
import sys

NUM_DEVICES = int(sys.argv[1])
os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={NUM_DEVICES}"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from tests.surgery.engine_cases import (  # noqa: E402
    CASES, STEP_CONFIGS, STEP_METHODS, engine_against_jacobian, params_after_steps,
)

CHECKED = ("mlp", "transformer", "bigru", "mmoe", "mpnn", "cross_stitch")


def main() -> None:
    assert jax.device_count() == NUM_DEVICES, jax.devices()
    results: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(99)
    for name, config, spec in CASES:
        if name in CHECKED:
            for key, value in engine_against_jacobian(config, spec, rng, np.float32).items():
                results[f"errors/{name}/{key}"] = np.asarray(value)
    for config_name in STEP_CONFIGS:
        for method in STEP_METHODS:
            for engine in (True, False):
                for path, leaf in params_after_steps(config_name, method, engine).items():
                    results[f"params/{config_name}/{method}/{engine}/{path}"] = leaf
    np.savez(sys.argv[2], **results)


if __name__ == "__main__":
    main()

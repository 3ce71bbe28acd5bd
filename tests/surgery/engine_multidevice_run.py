"""The Gramian-engine checks on N simulated CPU devices (run as a subprocess).

Usage: python -m tests.surgery.engine_multidevice_run NUM_DEVICES OUT.npz
For each case of ``ON_FOUR_DEVICES`` saves its random inputs and the engine's outputs on the
N devices (the parent compares them with the materialised Jacobian it has compiled for the
one-device check), and the parameters after real steps with the engine (the parent compares them
with its one-device steps without the engine).
XLA_FLAGS must be set before JAX is imported.
"""

from __future__ import annotations

import os
import sys

NUM_DEVICES = int(sys.argv[1])
os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count={NUM_DEVICES}"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from tests.surgery.engine_cases import (  # noqa: E402
    ON_FOUR_DEVICES, STEP_CONFIGS, STEP_METHODS, case_dtype, case_inputs, engine_outputs, params_after_steps,
)


def main() -> None:
    assert jax.device_count() == NUM_DEVICES, jax.devices()
    results: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(99)
    for name in ON_FOUR_DEVICES:
        dtype = case_dtype(name)
        with jax.enable_x64(dtype == np.float64):
            params, host, weights = case_inputs(name, rng, dtype)
            got = engine_outputs(name, params, host, weights)
        for index, leaf in enumerate(jax.tree.leaves(params)):
            results[f"case/{name}/param/{index}"] = leaf
        for key, value in host.items():
            results[f"case/{name}/batch/{key}"] = value
        results[f"case/{name}/weights"] = weights
        for key, value in got.items():
            results[f"case/{name}/engine/{key}"] = value
    for config_name in STEP_CONFIGS:
        for method in STEP_METHODS:
            for path, leaf in params_after_steps(config_name, method, engine=True).items():
                results[f"params/{config_name}/{method}/{path}"] = leaf
    np.savez(sys.argv[2], **results)


if __name__ == "__main__":
    main()

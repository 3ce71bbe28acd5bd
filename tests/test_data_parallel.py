"""N simulated devices give the parameters of 1 device on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_parameters_after_five_steps_match_one_device(tmp_path):
    """4 and 8 devices against 1, all trained in one subprocess of 8 simulated devices (one
    interpreter and one test, so pytest-xdist never runs the 1-device reference twice)."""
    out = tmp_path / "runs.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-m", "tests.multidevice_run", str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=600)
    with np.load(out) as saved:
        runs = dict(saved)
    one_device = {key[2:]: value for key, value in runs.items() if key.startswith("1/")}
    for num_devices in (4, 8):
        many = {key[len(f"{num_devices}/"):]: value for key, value in runs.items() if key.startswith(f"{num_devices}/")}
        assert set(many) == set(one_device)
        for case in ("ew", "pcgrad", "pcgrad_rep", "moco", "famo_rep"):
            names = [k for k in one_device if k.startswith(f"{case}/") and not k.endswith("/loss")]
            assert len(names) >= 6
            for name in names:
                reference = one_device[name].astype(np.float64)
                difference = np.linalg.norm(many[name] - reference) / np.linalg.norm(reference)
                assert difference < 1e-5, f"{name}: relative difference {difference:.2e} on {num_devices} devices"
            np.testing.assert_allclose(many[f"{case}/loss"], one_device[f"{case}/loss"], rtol=1e-5,
                                       err_msg=f"{case} losses on {num_devices} devices")

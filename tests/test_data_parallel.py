"""N simulated devices give the parameters of 1 device on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def train_on(num_devices: int, out: Path) -> dict[str, np.ndarray]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    subprocess.run(
        [sys.executable, "-m", "tests.multidevice_run", str(num_devices), str(out)],
        cwd=ROOT, env=env, check=True, timeout=600,
    )
    with np.load(out) as saved:
        return dict(saved)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory) -> dict[str, np.ndarray]:
    return train_on(1, tmp_path_factory.mktemp("dp") / "one.npz")


@pytest.mark.slow
@pytest.mark.parametrize("num_devices", [4, 8])
def test_parameters_after_five_steps_match_one_device(one_device, tmp_path, num_devices):
    many = train_on(num_devices, tmp_path / f"n{num_devices}.npz")
    assert set(many) == set(one_device)
    for case in ("ew", "pcgrad", "pcgrad_rep", "moco", "famo_rep"):
        names = [k for k in one_device if k.startswith(f"{case}/") and not k.endswith("/loss")]
        assert len(names) >= 6
        for name in names:
            reference = one_device[name].astype(np.float64)
            difference = np.linalg.norm(many[name] - reference) / np.linalg.norm(reference)
            assert difference < 1e-5, f"{name}: relative difference {difference:.2e} on {num_devices} devices"
        np.testing.assert_allclose(many[f"{case}/loss"], one_device[f"{case}/loss"], rtol=1e-5)

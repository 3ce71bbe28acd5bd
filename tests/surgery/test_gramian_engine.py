"""The Gramian engine (mtl_jax.surgery.gramian_engine) against the materialised Jacobian.

G from the engine equals J Jᵀ and its direction equals Jᵀw (float64, every trunk and
architecture); a real train step with the engine equals one without it (float32, PCGrad,
UPGrad, MGDA); both hold on 4 simulated devices, where the engine's parameters also equal
the 1-device ones. The 4-device subprocess returns its random inputs and the engine's
outputs; the materialised Jacobian compiled here for the 1-device check judges them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mtl_jax.surgery.gramian_engine import gram_trick_is_cheaper, plan_encode
from tests.models.fixtures import SMALL, TABLE, random_batch, task_names
from tests.surgery.engine_cases import (
    CASES, ON_FOUR_DEVICES, STEP_CONFIGS, STEP_METHODS, case_dtype, case_model, engine_against_jacobian,
    params_after_steps, reference_outputs, relative_difference, relative_errors, tolerance,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_engine_gramian_and_direction_equal_the_jacobian(name, rng):
    with jax.enable_x64(case_dtype(name) == np.float64):
        errors = engine_against_jacobian(name, rng)
    assert errors["gramian_scale"] > 0
    for key in ("gramian", "direction", "tasks"):
        assert errors[key] < tolerance(name), errors


def test_dense_kernels_and_their_biases_are_tapped():
    from flax import nnx

    from mtl_jax.models.factory import build_from_config

    model, params = build_from_config(dict(SMALL, trunk="mlp", num_layers=2), TABLE, task_names(TABLE), nnx.Rngs(0))
    leaves, treedef = jax.tree.flatten(params["shared"])
    batch = random_batch(np.random.default_rng(0), TABLE, 4)
    plan = plan_encode(model.encode, leaves, treedef, batch, None)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params["shared"])[0]]
    assert plan.tapped == frozenset(range(len(paths)))  # nothing falls back to per-task gradients
    kind_of = {paths[s.leaf]: s.kind for s in plan.sites}
    assert {p for p, k in kind_of.items() if k == "dot"} == {p for p in paths if p.endswith("['kernel']")}
    assert {p for p, k in kind_of.items() if k == "add"} == {p for p in paths if p.endswith("['bias']")}
    dense = {s.site_id: paths[s.leaf] for s in plan.sites if s.kind == "dot"}
    for site in plan.sites:  # each bias rides on its own layer's kernel (the d_in = 1 column)
        if site.kind == "add":
            assert dense[site.bias_of] == paths[site.leaf].replace("['bias']", "['kernel']")


def test_gram_trick_is_chosen_for_few_rows_only():
    assert gram_trick_is_cheaper(rows=256, k=512, m=512, num_tasks=8)
    assert not gram_trick_is_cheaper(rows=4096, k=64, m=64, num_tasks=8)
    assert not gram_trick_is_cheaper(rows=256, k=1, m=512, num_tasks=8)  # a bias-like input


@pytest.fixture(scope="module")
def materialised_steps() -> dict:
    return {(c, m): params_after_steps(c, m, engine=False) for c in STEP_CONFIGS for m in STEP_METHODS}


@pytest.mark.parametrize("config_name", sorted(STEP_CONFIGS))
@pytest.mark.parametrize("method", STEP_METHODS)
def test_train_step_with_engine_equals_materialised(materialised_steps, config_name, method):
    with_engine = params_after_steps(config_name, method, engine=True)
    reference = materialised_steps[(config_name, method)]
    assert set(with_engine) == set(reference)
    assert relative_difference(with_engine, reference) < 1e-6


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("engine") / "four.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    subprocess.run(
        [sys.executable, "-m", "tests.surgery.engine_multidevice_run", "4", str(out)],
        cwd=ROOT, env=env, check=True, timeout=600,
    )
    with np.load(out) as saved:
        return dict(saved)


def _four_device_case(saved: dict, name: str) -> tuple[dict, dict, np.ndarray, dict]:
    """The random inputs a case ran on in the subprocess, and the engine's outputs there."""
    prefix = f"case/{name}/"
    treedef = case_model(name)[1]
    params = treedef.unflatten([saved[f"{prefix}param/{index}"] for index in range(treedef.num_leaves)])
    host = {key[len(prefix) + 6:]: value for key, value in saved.items() if key.startswith(prefix + "batch/")}
    got = {key[len(prefix) + 7:]: value for key, value in saved.items() if key.startswith(prefix + "engine/")}
    return params, host, saved[prefix + "weights"], got


@pytest.mark.slow
def test_engine_on_four_devices(four_devices, materialised_steps):
    assert {key.split("/")[1] for key in four_devices if key.startswith("case/")} == set(ON_FOUR_DEVICES)
    for name in ON_FOUR_DEVICES:  # G, Jᵀw and the heads' gradients against J, in the case's dtype
        dtype = case_dtype(name)
        params, host, weights, got = _four_device_case(four_devices, name)
        assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params)) and set(got) == {"gramian", "direction", "tasks"}
        with jax.enable_x64(dtype == np.float64):
            errors = relative_errors(got, reference_outputs(name, params, host, weights))
        assert errors["gramian_scale"] > 0, name
        for key in ("gramian", "direction", "tasks"):
            assert errors[key] < tolerance(name), (name, errors)
    for config_name in STEP_CONFIGS:
        for method in STEP_METHODS:
            # the engine on 4 devices against the materialised Jacobian on 1 (the materialised
            # Jacobian on 4 and 8 devices: the MoCo case of tests/test_data_parallel.py)
            prefix = f"params/{config_name}/{method}/"
            with_engine = {k[len(prefix):]: v for k, v in four_devices.items() if k.startswith(prefix)}
            one_device = materialised_steps[(config_name, method)]
            assert with_engine and set(with_engine) == set(one_device), (config_name, method)
            assert relative_difference(with_engine, one_device) < 1e-6, (config_name, method, "engine on 4 vs none on 1")

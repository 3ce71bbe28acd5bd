"""The Gramian engine (mtl_jax.surgery.gramian_engine) against the materialised Jacobian.

G from the engine equals J Jᵀ and its direction equals Jᵀw (float64, every trunk and
architecture); a real train step with the engine equals one without it (float32, PCGrad,
UPGrad, MGDA); both hold on 4 simulated devices, where the engine's parameters also equal
the 1-device ones.
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
    CASES, FLOAT32_ONLY, STEP_CONFIGS, STEP_METHODS, engine_against_jacobian, params_after_steps,
    relative_difference,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,config,spec", CASES, ids=[c[0] for c in CASES])
def test_engine_gramian_and_direction_equal_the_jacobian(name, config, spec, rng):
    if name in FLOAT32_ONLY:
        errors, tolerance = engine_against_jacobian(config, spec, rng, np.float32), 1e-5
    else:
        with jax.enable_x64(True):
            errors, tolerance = engine_against_jacobian(config, spec, rng, np.float64), 1e-6
    assert errors["gramian_scale"] > 0
    assert errors["gramian"] < tolerance, errors
    assert errors["direction"] < tolerance, errors
    assert errors["tasks"] < tolerance, errors


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


@pytest.mark.slow
def test_engine_on_four_devices(four_devices, materialised_steps):
    errors = {k: float(v) for k, v in four_devices.items() if k.startswith("errors/")}
    assert len(errors) >= 6 * 4
    for key, value in errors.items():
        if not key.endswith("gramian_scale"):
            assert value < 1e-5, (key, value)
    for config_name in STEP_CONFIGS:
        for method in STEP_METHODS:
            runs = {}
            for engine in (True, False):
                prefix = f"params/{config_name}/{method}/{engine}/"
                runs[engine] = {k[len(prefix):]: v for k, v in four_devices.items() if k.startswith(prefix)}
            assert runs[True] and set(runs[True]) == set(runs[False])
            assert relative_difference(runs[True], runs[False]) < 1e-6, (config_name, method)
            one_device = materialised_steps[(config_name, method)]
            assert relative_difference(runs[True], one_device) < 1e-5, (config_name, method, "1 vs 4 devices")

"""PCD, COSMOS and PBI inside the compiled step: PCD's weights are the dual-cone projection of
the primary gradient on the step's own Gramian (so no task conflicts with the update); the
loss-level fast path of COSMOS and PBI equals their Jacobian path; LTB trains in the step;
and 4 simulated devices give the 1-device result, for the methods and for augmentation in
the per-device body (subprocess)."""

from __future__ import annotations


import jax
import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.aggregators.cosmos import cosmos
from mtl_jax.aggregators.pbi import pbi
from mtl_jax.aggregators.pcd import pcd
from mtl_jax.models.factory import build_from_config
from tests.aggregators.references import lower_bounded_qp
from tests.helpers import random_batch, run_multidevice_script, run_steps, small_model
from tests.models.fixtures import SMALL, TABLE, task_names
from tests.models.fixtures import random_batch as spec_batch

NUM_TASKS = 4


def train(model, params, batches, aggregator, mode, optimizer=None, **step_kwargs):
    state, metrics = run_steps(model, params, batches, aggregator, mode, optimizer or optax.sgd(0.5), **step_kwargs)
    return jax.device_get(state), metrics


@pytest.mark.parametrize("mode", ["representation"])  # both modes train in tests/test_step_all_methods.py
def test_pcd_weights_project_the_primary_on_the_steps_gramian(rng, mode):
    model, params = small_model(NUM_TASKS)
    batches = [random_batch(rng, 16, NUM_TASKS) for _ in range(3)]
    state, metrics = train(model, params, batches, pcd(primary=[1]), mode)
    assert int(state.step) == 3
    for m in metrics:
        norms, cosines, w = (np.asarray(m[k], np.float64) for k in ("grad_norm", "grad_cosine", "weights"))
        gram = cosines * np.outer(norms, norms)
        scale = norms.max() ** 2
        assert np.all(gram @ w >= -1e-5 * scale)  # no task conflicts with the update
        expected = lower_bounded_qp(gram, np.eye(NUM_TASKS)[1])
        assert (w - expected) @ gram @ (w - expected) <= (1e-3 * norms.max()) ** 2


@pytest.mark.parametrize(
    "aggregator,mode",
    [(cosmos(penalty=2.0, dirichlet_alpha=1.2), "full"), (pbi(ideal="running_min"), "representation")],
    ids=["cosmos-full", "pbi-representation"],
)
def test_loss_level_fast_path_equals_the_jacobian_path(rng, aggregator, mode):
    model, params = small_model(NUM_TASKS)
    batches = [random_batch(rng, 16, NUM_TASKS) for _ in range(3)]
    fast, fast_metrics = train(model, params, batches, aggregator, mode, gradient_stats=False)
    slow, slow_metrics = train(model, params, batches, aggregator, mode, gradient_stats=True)
    assert int(fast.step) == 3
    for a, b in zip(jax.tree.leaves(fast.params), jax.tree.leaves(slow.params)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(fast.aggregator_state), jax.tree.leaves(slow.aggregator_state)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    for f, s in zip(fast_metrics, slow_metrics):
        np.testing.assert_allclose(f["weights"], s["weights"], rtol=2e-4)
        assert np.all(np.isfinite(f["weights"]))
    moved = max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(params["shared"]), jax.tree.leaves(fast.params["shared"])))
    assert moved > 0


def test_ltb_lowers_every_task_loss_in_the_step(rng):
    model, params = build_from_config(dict(SMALL, architecture="ltb", branch_hidden=(8, 8)), TABLE,
                                      task_names(TABLE), nnx.Rngs(0))
    batch = spec_batch(rng, TABLE, batch_size=16)
    _, metrics = train(model, params, [batch] * 12, get_aggregator("pcgrad"), "full", optimizer=optax.adam(1e-2),
                       gradient_stats=False)
    first, last = metrics[0]["loss"], metrics[-1]["loss"]
    assert np.all(np.isfinite(last)) and np.all(last < first), f"{first} -> {last}"


@pytest.mark.slow
def test_four_simulated_devices_equal_one(tmp_path):
    results = run_multidevice_script("tests.multidevice_new_methods", tmp_path / "result.npz")
    names = sorted({key.split("/")[0] for key in results})
    assert names == ["augment", "cosmos", "pbi", "pcd"]
    assert (results["augment/tokens@1"] == 1).any()  # the spans were masked: augmentation ran
    for key in results:
        if key.endswith("@4"):
            np.testing.assert_allclose(results[key], results[key[:-2] + "@1"], rtol=1e-4, atol=1e-5, err_msg=key)

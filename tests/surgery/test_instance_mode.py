"""Instance mode (``mtl_jax.surgery.instance``) against float64 references.

The reference writes the per-example losses ℓ_{b,t}(β) = B·m_{b,t}·CE_t(z_b + β) / N_t by hand
(softmax cross-entropy, masks m), differentiates them with ``jax.jacrev`` in float64 with
respect to the shared shift β (eq. (1): the rows of the Gramian) and the shared parameters θ
(the update Σ w_{b,t} ∇_θ ℓ_{b,t}), and compares the compiled step with both.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from mtl_jax.aggregators import WeightingInputs, get_aggregator
from mtl_jax.cli.main import main
from mtl_jax.parallel import DATA_AXIS
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate
from mtl_jax.surgery.instance import instance_refusal, instance_step, supported_modes, task_gramian
from mtl_jax.types import mask_key
from tests.cli.conftest import assert_refused, checksums, finished_run  # noqa: F401 - a fixture
from tests.helpers import random_batch, small_model
from tests.training.small_run import train_args

ROOT = Path(__file__).resolve().parents[2]
NUM_TASKS = 2
BATCH = 4
LEARNING_RATE = 0.1
RUN_SCRIPT = "tests.surgery.instance_multidevice_run"
HIDDEN = (16, 32)  # F = 32 ≥ B·T: G has full rank, so the weights are unique


def masked_batch(rng: np.random.Generator, batch_size: int = BATCH) -> dict:
    """A random batch where task 1 is absent from two examples and the last example is padding."""
    batch = random_batch(rng, batch_size, NUM_TASKS)
    for t in range(NUM_TASKS):
        mask = np.ones(batch_size, bool)
        mask[-1] = False
        if t == 1:
            mask[:2] = False
        batch[mask_key(f"task{t}")] = mask
    return batch


def _f64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def reference_losses(model, shared, tasks, batch, shift) -> jnp.ndarray:
    """(B, T) ℓ_{b,t} written from the definition, in float64."""
    z = model.encode(shared, batch, None) + shift
    outputs = model.decode(tasks, z, batch, None)
    batch_size = batch["x"].shape[0]
    columns = []
    for task in model.tasks:
        labels = jnp.asarray(batch[task.name])
        mask = jnp.asarray(batch.get(mask_key(task.name), np.ones(batch_size, bool)), jnp.float64)
        log_p = jax.nn.log_softmax(outputs[task.name], axis=-1)
        ce = -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
        columns.append(batch_size * mask * ce / jnp.maximum(mask.sum(), 1.0))
    return jnp.stack(columns, axis=1)


_DERIVATIVES: dict = {}


def _reference_derivatives(model):
    """jit(params, batch) -> (rows w.r.t. β, objective losses, ∂ℓ/∂θ, head gradients), float64."""
    if id(model) in _DERIVATIVES:
        return _DERIVATIVES[id(model)][1]

    def derivatives(params, batch):
        shift = jnp.zeros(model.encode(params["shared"], batch, None).shape[1:], jnp.float64)
        losses_of = functools.partial(reference_losses, model)
        rows = jax.jacrev(lambda s: losses_of(params["shared"], params["tasks"], batch, s))(shift)
        objective = losses_of(params["shared"], params["tasks"], batch, shift).reshape(-1)
        theta_jac = jax.jacrev(lambda p: losses_of(p, params["tasks"], batch, shift).reshape(-1))(params["shared"])
        heads = jax.grad(lambda t: losses_of(params["shared"], t, batch, shift).mean(0).sum())(params["tasks"])
        return rows.reshape(objective.shape[0], -1), objective, theta_jac, heads

    _DERIVATIVES[id(model)] = (model, jax.jit(derivatives))  # the model kept alive: its id stays its own
    return _DERIVATIVES[id(model)][1]


@functools.lru_cache(maxsize=None)
def _reference_weights(method: str):
    aggregator = get_aggregator(method)
    return jax.jit(lambda g, losses, key: aggregator.weigh(WeightingInputs(g, losses, key, jnp.asarray(0)), aggregator.init(NUM_TASKS))[0])


def reference(model, params, batch, method: str, key) -> dict:
    """G (eq. 2), w = weigh(G), the update Σ w ∇_θ ℓ and the head gradients, in float64."""
    with jax.enable_x64(True):
        params = _f64(params)
        batch = {k: (np.asarray(v, np.float64) if k == "x" else v) for k, v in batch.items()}
        rows, objective, theta_jac, heads = jax.device_get(_reference_derivatives(model)(params, batch))
        gram = rows @ rows.T  # objective b·T + t
        weights = np.asarray(_reference_weights(method)(jnp.asarray(gram), jnp.asarray(objective), key))
        update = jax.tree.map(lambda j: np.tensordot(weights, j, axes=1), theta_jac)
        return {"gramian": gram, "weights": weights, "shared": update, "tasks": _f64(heads), "losses": objective}


def compiled_instance_step(model, aggregator):
    """``instance_step`` alone under shard_map over all local devices (returns every field)."""
    mesh = data_mesh()

    def local(params, batch, key):
        return instance_step(model, aggregator, params, aggregator.init(NUM_TASKS), jnp.asarray(0), batch, None, key, DATA_AXIS)

    sharded = jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS), PartitionSpec()),
                            out_specs=PartitionSpec())
    return jax.jit(sharded)


def assert_close(actual, expected, rtol=2e-5):
    actual, expected = jax.tree.leaves(_f64(actual)), jax.tree.leaves(_f64(expected))
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        scale = max(np.abs(e).max(), 1e-30)
        assert np.abs(a - e).max() <= rtol * scale, (np.abs(a - e).max(), scale)


@pytest.fixture(scope="module")
def model_and_params():
    return small_model(NUM_TASKS, hidden=HIDDEN)


def test_instance_gramian_weights_and_update_equal_float64_reference(model_and_params, rng):
    """Every field of ``instance_step`` (G does not depend on the method: one suffices; the
    masked test and the real steps below cover UPGrad and MGDA)."""
    model, params = model_and_params
    aggregator = get_aggregator("pcgrad")
    batch = random_batch(rng, BATCH, NUM_TASKS)
    key = jax.random.key(int(rng.integers(1 << 30)))
    result = compiled_instance_step(model, aggregator)(params, batch, key)
    expected = reference(model, params, batch, aggregator.name, key)
    assert result.objective_gramian.shape == (BATCH * NUM_TASKS,) * 2
    assert_close(result.objective_gramian, expected["gramian"])
    assert_close(result.instance_weights.reshape(-1), expected["weights"], rtol=1e-4)
    assert_close(result.grads["shared"], expected["shared"], rtol=1e-4)
    assert_close(result.grads["tasks"], expected["tasks"])
    assert_close(result.losses, expected["losses"].reshape(BATCH, NUM_TASKS).mean(0))
    assert_close(result.gramian, task_gramian(jnp.asarray(expected["gramian"]), NUM_TASKS))


def test_masked_and_padded_examples_give_zero_rows(model_and_params, rng):
    model, params = model_and_params
    aggregator = get_aggregator("upgrad")
    batch = masked_batch(rng)
    key = jax.random.key(0)
    result = compiled_instance_step(model, aggregator)(params, batch, key)
    gram = np.asarray(result.objective_gramian).reshape(BATCH, NUM_TASKS, BATCH, NUM_TASKS)
    assert np.all(gram[-1] == 0) and np.all(gram[:, :, -1] == 0)  # the padded example
    assert np.all(gram[:2, 1] == 0) and np.all(gram[:, :, :2, 1] == 0)  # task 1 absent
    assert np.all(np.diagonal(gram[:-1, 0, :-1, 0]) > 0)
    expected = reference(model, params, batch, aggregator.name, key)
    assert_close(result.objective_gramian, expected["gramian"])
    assert_close(result.grads["shared"], expected["shared"], rtol=1e-4)
    # UPGrad ignores zero rows: the padded example changes nothing
    trimmed = {k: v[:-1] for k, v in batch.items()}
    without = compiled_instance_step(model, aggregator)(params, trimmed, key)
    assert_close(result.grads["shared"], without.grads["shared"], rtol=1e-4)
    # MGDA: a zero row lies in the convex hull, so its min-norm point and the update are 0
    mgda = compiled_instance_step(model, get_aggregator("mgda"))(params, batch, key)
    scale = max(np.abs(leaf).max() for leaf in jax.tree.leaves(without.grads["shared"]))
    assert max(np.abs(leaf).max() for leaf in jax.tree.leaves(mgda.grads["shared"])) < 1e-4 * scale


def run_one_step(model, params, method: str, mode: str, batch, seed: int = 0):
    aggregator = get_aggregator(method)
    optimizer = optax.sgd(LEARNING_RATE)
    mesh = data_mesh()
    state = replicate(create_train_state(params, optimizer, aggregator, NUM_TASKS, seed), mesh)
    key = jax.random.split(jax.random.fold_in(state.key, state.step))[0]  # the step's aggregator key
    step = make_train_step(model, aggregator, optimizer, mesh, mode=mode, gradient_stats=True)
    new_state, metrics = step(state, batch)
    return jax.device_get(new_state.params), jax.device_get(metrics), key


@pytest.mark.parametrize("method", ["upgrad", "pcgrad", "mgda"])
def test_real_train_step_in_instance_mode_equals_reference(model_and_params, rng, method):
    model, params = model_and_params
    # MGDA's min-norm point is 0 as soon as one row is zero (test below): no masks for it
    batch = masked_batch(rng) if method != "mgda" else random_batch(rng, BATCH, NUM_TASKS)
    new_params, metrics, key = run_one_step(model, params, method, "instance", batch)
    expected = reference(model, params, batch, method, key)
    grads = {"shared": expected["shared"], "tasks": expected["tasks"]}
    assert_close(new_params, jax.tree.map(lambda p, g: p - LEARNING_RATE * g, _f64(params), grads), rtol=1e-5)
    counts = np.stack([batch.get(mask_key(f"task{t}"), np.ones(BATCH, bool)) for t in range(NUM_TASKS)], 1).astype(float)
    weights = expected["weights"].reshape(BATCH, NUM_TASKS)
    assert_close(metrics["weights"], BATCH * (weights * counts).sum(0) / counts.sum(0), rtol=1e-4)
    assert metrics["loss"].shape == (NUM_TASKS,) and metrics["weights"].shape == (NUM_TASKS,)


def test_one_example_reduces_to_representation_mode(model_and_params, rng):
    """With B = 1 the objectives are the tasks: G, w and the step are representation mode's."""
    model, params = model_and_params
    method = "upgrad"
    batch = random_batch(rng, 1, NUM_TASKS)
    instance, instance_metrics, _ = run_one_step(model, params, method, "instance", batch)
    representation, representation_metrics, _ = run_one_step(model, params, method, "representation", batch)
    assert_close(instance, representation, rtol=1e-5)
    assert_close(instance_metrics["weights"], representation_metrics["weights"], rtol=1e-5)
    for name in ("grad_norm", "grad_cosine"):  # with B = 1, G^task is representation mode's G
        assert_close(instance_metrics[name], representation_metrics[name], rtol=1e-5)


def test_only_stateless_gramian_weightings_take_instance_mode(model_and_params):
    model, _ = model_and_params
    for accepted in ("upgrad", "pcgrad", "mgda", "mgda_ub", "cagrad", "nashmtl", "dualproj"):
        assert instance_refusal(get_aggregator(accepted)) is None, accepted
        assert "instance" in supported_modes(get_aggregator(accepted))
    refused = {
        "gradnorm": "state is sized by the task count", "gradvac": "state is sized by the task count",
        "pcd": "primary tasks", "sum": "needs a Gramian weighting", "uw": "needs a Gramian weighting",
        "moco": "needs a Gramian weighting", "graddrop": "needs a Gramian weighting",
    }
    for name, reason in refused.items():
        aggregator = get_aggregator(name)
        assert reason in instance_refusal(aggregator), name
        assert "instance" not in supported_modes(aggregator)
        with pytest.raises(ValueError, match=f"{name}.*cannot run in mode 'instance'.*{reason}"):
            make_train_step(model, aggregator, optax.sgd(0.1), data_mesh(), mode="instance")
    preferences = get_aggregator("aligned_mtl", preferences=[1.0, 2.0, 3.0])
    assert "sized by the task count" in instance_refusal(preferences)


@pytest.mark.parametrize("method, pattern", [("gradnorm", "state is sized by the task count"), ("sum", "needs a Gramian weighting")])
def test_config_check_refuses_instance_mode_with_one_line(finished_run, capsys, method, pattern):  # noqa: F811
    before = checksums(finished_run)
    args = train_args(finished_run, "--overwrite") + ["--set", f"aggregator={method!r}", "--set", "mode='instance'"]
    assert_refused(main(args), capsys.readouterr().err, pattern)
    assert checksums(finished_run) == before


@pytest.mark.slow
def test_four_simulated_devices_equal_one_device(model_and_params, tmp_path):
    """The global-batch Gramian: 4 devices (a subprocess) give what 1 device gives."""
    model, params = model_and_params
    out = tmp_path / "four.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    subprocess.run([sys.executable, "-m", RUN_SCRIPT, "4", str(out)], cwd=ROOT, env=env, check=True, timeout=300)
    from tests.surgery.instance_multidevice_run import METHODS, run  # noqa: PLC0415

    one_device = run()
    with np.load(out) as saved:
        four = dict(saved)
    assert set(four) == set(one_device) and len(four) >= len(METHODS) * 3
    for name, value in one_device.items():
        assert_close(four[name], value, rtol=1e-5)

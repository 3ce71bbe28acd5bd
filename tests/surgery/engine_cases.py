"""Shared cases for the Gramian-engine tests (in-process and the 4-device subprocess).

The reference is the materialised Jacobian of the *global* task losses with respect to the
shared parameters, taken outside ``shard_map`` on the whole batch (``jax.jacrev``), then
G = J Jᵀ and d = Jᵀ w in NumPy float64 (design note, "The Gramian engine").

Each case's model is built once per process and its two programs (the engine under
``shard_map`` over the local devices, and the reference) are compiled once per dtype: fresh
random parameters, batches and weights are arguments, so the in-process check and the
4-device check (whose engine outputs and inputs come back from the subprocess) share one
compiled reference.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import PartitionSpec

from mtl_jax.aggregators import get_aggregator
from mtl_jax.models.factory import build_from_config
from mtl_jax.parallel import DATA_AXIS, data_mesh, shard_batch
from mtl_jax.surgery import create_train_state, make_train_step, replicate
from mtl_jax.surgery.gramian_engine import gramian_engine
from mtl_jax.surgery.jacobian import global_task_losses
from tests.models.fixtures import ARCHITECTURES, SMALL, SPEC_OF_TRUNK, TEXT, random_batch, task_names

# (name, model config, dataset spec): every trunk with hard sharing, every architecture on
# the bag-of-embeddings trunk (as tests/models do)
CASES = [(trunk, dict(SMALL, trunk=trunk), spec) for trunk, spec in SPEC_OF_TRUNK.items()] + [
    (arch, dict(SMALL, trunk="bag_of_embeddings", architecture=arch), TEXT)
    for arch in ARCHITECTURES
    if arch != "hard"
]
_CASE = {name: (config, spec) for name, config, spec in CASES}
# Their cells' carry follows the embedding's float32 whatever the parameter dtype, so these
# two are checked in float32 (every parameter of theirs takes the fallback path anyway).
FLOAT32_ONLY = ("bilstm", "bigru")
# the cases also checked on 4 simulated devices (every site kind, a scan, experts, columns)
ON_FOUR_DEVICES = ("mlp", "transformer", "bigru", "mmoe", "mpnn", "cross_stitch")
BATCH = 4


def case_dtype(name: str):
    return np.float32 if name in FLOAT32_ONLY else np.float64


def tolerance(name: str) -> float:
    """Relative error allowed: float64 rounding, or float32's for the recurrent cells."""
    return 1e-5 if name in FLOAT32_ONLY else 1e-6


@functools.lru_cache(maxsize=None)
def _built(name: str):
    """(model, initial parameters as NumPy float64) of a case, built once per process."""
    config, spec = _CASE[name]
    model, params = build_from_config(config, spec, task_names(spec), nnx.Rngs(0))
    return model, jax.tree.map(lambda x: np.asarray(x, np.float64), params)


def case_model(name: str):
    """(model, parameter treedef) of a case."""
    model, params = _built(name)
    return model, jax.tree.structure(params)


def _as(array, dtype) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(dtype) if np.issubdtype(array.dtype, np.floating) else array


def case_inputs(name: str, rng: np.random.Generator, dtype) -> tuple[dict, dict, np.ndarray]:
    """Fresh random (params, host batch, weights) of a case in ``dtype``, as NumPy: the
    initial parameters plus fresh noise (no eager JAX op: nothing to compile)."""
    _, spec = _CASE[name]
    params = jax.tree.map(lambda x: _as(x + 0.1 * rng.standard_normal(x.shape), dtype), _built(name)[1])
    host = {key: _as(value, dtype) for key, value in random_batch(rng, spec, BATCH).items()}
    weights = rng.standard_normal(len(case_model(name)[0].tasks)).astype(dtype)
    return params, host, weights


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


@functools.lru_cache(maxsize=None)
def _engine_program(name: str) -> Callable:
    model, _ = case_model(name)
    mesh = data_mesh()

    def local(params, batch, weights):
        result = gramian_engine(
            model, params, batch, None, DATA_AXIS,
            losses_of=lambda tasks, z: global_task_losses(model, tasks, z, batch, None, DATA_AXIS),
        )
        return result.gramian, result.direction(weights), result.tasks

    run = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS), PartitionSpec()),
                                out_specs=PartitionSpec()))
    return lambda params, host, weights: run(params, shard_batch(host, mesh), weights)


def engine_outputs(name: str, params: dict, host: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The engine's G, direction Jᵀw and head gradients over the local devices (flat, float64)."""
    gram, direction, tasks = _engine_program(name)(params, host, weights)
    return {"gramian": np.asarray(gram, np.float64), "direction": _flat(direction), "tasks": _flat(tasks)}


def _reference_losses(model, shared, tasks, batch):
    outputs = model.decode(tasks, model.encode(shared, batch, None), batch, None)
    stats = [task.loss(outputs[task.name], batch) for task in model.tasks]
    totals = jnp.stack([s.total for s in stats])
    return totals / jnp.maximum(jnp.stack([s.count for s in stats]), 1.0)


@functools.lru_cache(maxsize=None)
def _reference_program(name: str) -> Callable:
    model, _ = case_model(name)

    @jax.jit
    def reference(params, batch):
        """J of the shared parameters, and the heads' gradients Σ_t ∂L_t/∂heads from the same
        T rows (one batched backward)."""
        jac = jax.jacrev(lambda p: _reference_losses(model, p["shared"], p["tasks"], batch))(params)
        return jac["shared"], jax.tree.map(lambda rows: rows.sum(0), jac["tasks"])

    return reference


def reference_outputs(name: str, params: dict, host: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
    """G = J Jᵀ, Jᵀw and the head gradients from the materialised Jacobian (NumPy float64)."""
    num_tasks = len(weights)
    jac, tasks = _reference_program(name)(params, jax.tree.map(jnp.asarray, host))
    rows = np.concatenate([np.asarray(x, np.float64).reshape(num_tasks, -1) for x in jax.tree.leaves(jac)], 1)
    return {"gramian": rows @ rows.T, "direction": np.asarray(weights, np.float64) @ rows, "tasks": _flat(tasks)}


def relative_errors(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """‖got − expected‖ / ‖expected‖ per output, and ‖G‖ (a zero G would pass trivially)."""
    errors = {key: float(np.linalg.norm(got[key] - expected[key]) / np.linalg.norm(expected[key])) for key in expected}
    return {**errors, "gramian_scale": float(np.linalg.norm(expected["gramian"]))}


def engine_against_jacobian(name: str, rng: np.random.Generator) -> dict[str, float]:
    """Relative errors of the engine's G, Jᵀw and head gradients against the materialised J,
    on fresh random inputs in the case's dtype (float64 needs ``jax.enable_x64``)."""
    params, host, weights = case_inputs(name, rng, case_dtype(name))
    return relative_errors(engine_outputs(name, params, host, weights), reference_outputs(name, params, host, weights))


STEP_METHODS = ("pcgrad", "upgrad", "mgda")
STEP_CONFIGS = {
    "mlp": (dict(SMALL, trunk="mlp"), SPEC_OF_TRUNK["mlp"]),
    "mmoe": (dict(SMALL, trunk="bag_of_embeddings", architecture="mmoe"), TEXT),
}


@functools.lru_cache(maxsize=None)
def _step_model(config_name: str, seed: int):
    config, spec = STEP_CONFIGS[config_name]
    return build_from_config(config, spec, task_names(spec), nnx.Rngs(seed))


def params_after_steps(config_name: str, method: str, engine: bool, seed: int = 0, steps: int = 2) -> dict:
    """Float32 parameters after ``steps`` real train steps (SGD with momentum), as NumPy."""
    model, params = _step_model(config_name, seed)
    spec = STEP_CONFIGS[config_name][1]
    aggregator, optimizer = get_aggregator(method), optax.sgd(0.05, momentum=0.9)
    mesh = data_mesh()
    state = replicate(create_train_state(params, optimizer, aggregator, len(model.tasks), seed), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, gradient_stats=True, gramian_engine=engine)
    rng = np.random.default_rng(seed + 7)
    for _ in range(steps):
        state, _ = step(state, random_batch(rng, spec, BATCH))
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def relative_difference(a: dict, b: dict, start: dict | None = None) -> float:
    """‖a − b‖ over all leaves, relative to ‖b‖."""
    diff = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in b)
    norm = sum(float(np.sum(b[k].astype(np.float64) ** 2)) for k in b)
    return (diff / norm) ** 0.5

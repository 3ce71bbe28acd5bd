"""Shared cases for the Gramian-engine tests (in-process and the 4-device subprocess).

The reference is the materialised Jacobian of the *global* task losses with respect to the
shared parameters, taken outside ``shard_map`` on the whole batch (``jax.jacrev``), then
G = J Jᵀ and d = Jᵀ w in NumPy float64.
"""

from __future__ import annotations

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
# Their cells' carry follows the embedding's float32 whatever the parameter dtype, so these
# two are checked in float32 (every parameter of theirs takes the fallback path anyway).
FLOAT32_ONLY = ("bilstm", "bigru")
BATCH = 4


def _cast(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _reference_losses(model, shared, tasks, batch):
    outputs = model.decode(tasks, model.encode(shared, batch, None), batch, None)
    stats = [task.loss(outputs[task.name], batch) for task in model.tasks]
    totals = jnp.stack([s.total for s in stats])
    return totals / jnp.maximum(jnp.stack([s.count for s in stats]), 1.0)


def engine_against_jacobian(config, spec, rng: np.random.Generator, dtype) -> dict[str, float]:
    """Relative errors of the engine's G, Jᵀw and head gradients against the materialised J."""
    model, params = build_from_config(config, spec, task_names(spec), nnx.Rngs(int(rng.integers(1 << 30))))
    params = _cast(jax.tree.map(lambda x: x + 0.1 * rng.standard_normal(x.shape), params), dtype)
    host = _cast(random_batch(rng, spec, BATCH), dtype)
    num_tasks = len(model.tasks)
    weights = jnp.asarray(rng.standard_normal(num_tasks), dtype)
    mesh = data_mesh()

    def local(params, batch):
        result = gramian_engine(
            model, params, batch, None, DATA_AXIS,
            losses_of=lambda tasks, z: global_task_losses(model, tasks, z, batch, None, DATA_AXIS),
        )
        return result.gramian, result.direction(weights), result.tasks

    run = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)),
                                out_specs=PartitionSpec()))
    gram, direction, task_grads = run(params, shard_batch(host, mesh))
    batch = jax.tree.map(jnp.asarray, host)

    @jax.jit
    def reference(params, batch):
        jac = jax.jacrev(lambda shared: _reference_losses(model, shared, params["tasks"], batch))(params["shared"])
        tasks = jax.grad(lambda tasks: _reference_losses(model, params["shared"], tasks, batch).sum())(params["tasks"])
        return jac, tasks

    jac, ref_tasks = reference(params, batch)
    rows = np.concatenate([np.asarray(x, np.float64).reshape(num_tasks, -1) for x in jax.tree.leaves(jac)], 1)
    ref_gram = rows @ rows.T
    ref_direction = np.asarray(weights, np.float64) @ rows
    got_direction = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(direction)])
    flat = lambda tree: np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])
    return {
        "gramian": float(np.linalg.norm(np.asarray(gram, np.float64) - ref_gram) / np.linalg.norm(ref_gram)),
        "direction": float(np.linalg.norm(got_direction - ref_direction) / np.linalg.norm(ref_direction)),
        "tasks": float(np.linalg.norm(flat(task_grads) - flat(ref_tasks)) / np.linalg.norm(flat(ref_tasks))),
        "gramian_scale": float(np.linalg.norm(ref_gram)),
    }


STEP_METHODS = ("pcgrad", "upgrad", "mgda")
STEP_CONFIGS = {
    "mlp": (dict(SMALL, trunk="mlp"), SPEC_OF_TRUNK["mlp"]),
    "mmoe": (dict(SMALL, trunk="bag_of_embeddings", architecture="mmoe"), TEXT),
}


def params_after_steps(config_name: str, method: str, engine: bool, seed: int = 0, steps: int = 2) -> dict:
    """Float32 parameters after ``steps`` real train steps (SGD with momentum), as NumPy."""
    config, spec = STEP_CONFIGS[config_name]
    model, params = build_from_config(config, spec, task_names(spec), nnx.Rngs(seed))
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

"""Small models and random batches shared by the step tests."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.models import MLPTrunk, build_model, classification_task
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate
from mtl_jax.training.hooks import Hook

NUM_CLASSES = 5


def small_model(num_tasks: int, in_features: int = 12, hidden=(16, 16), seed: int = 0):
    rngs = nnx.Rngs(seed)
    tasks = [classification_task(f"task{t}", NUM_CLASSES) for t in range(num_tasks)]
    trunk = MLPTrunk(in_features, hidden, input_key="x", rngs=rngs)
    return build_model(trunk, hidden[-1], tasks, rngs)


def random_batch(rng: np.random.Generator, batch_size: int, num_tasks: int, in_features: int = 12) -> dict:
    batch = {"x": rng.standard_normal((batch_size, in_features)).astype(np.float32)}
    for t in range(num_tasks):
        batch[f"task{t}"] = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
    return batch


def state_and_step(
    model, params, aggregator, mode: str = "full", optimizer=None, seed: int = 0, devices=None, **step_kwargs
):
    """A replicated train state and the compiled step over ``devices`` (default: all local
    devices); ``aggregator`` is a registry name or a built aggregator."""
    optimizer = optimizer or optax.sgd(1.0)
    aggregator_fn = get_aggregator(aggregator) if isinstance(aggregator, str) else aggregator
    mesh = data_mesh(devices) if devices is not None else data_mesh()
    state = replicate(
        create_train_state(params, optimizer, aggregator_fn, len(model.tasks), seed), mesh
    )
    return state, make_train_step(model, aggregator_fn, optimizer, mesh, mode=mode, **step_kwargs)


def run_steps(
    model, params, batches, aggregator, mode: str, optimizer=None, seed: int = 0, devices=None, **step_kwargs
):
    """Train on ``batches`` over ``devices`` (default: all local devices); return (final state,
    list of metrics)."""
    state, step = state_and_step(model, params, aggregator, mode, optimizer, seed, devices, **step_kwargs)
    metrics = []
    for batch in batches:
        state, step_metrics = step(state, batch)
        metrics.append(jax.device_get(step_metrics))
    return state, metrics


def persistent_jit_cache(fallback: Path) -> dict[str, str]:
    """The environment of a persistent compilation cache shared by a test's processes (the
    suite's own ``JAX_COMPILATION_CACHE_DIR`` when one is set, else ``fallback``) that keeps
    every compile: minimum compile time and size 0, so what is cached never depends on load."""
    return {
        "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(fallback),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def flat_params(params) -> dict[str, np.ndarray]:
    """``{key path: host array}`` of a parameter pytree."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def take(batches, count: int) -> list[dict[str, np.ndarray]]:
    """The next ``count`` batches of an iterator."""
    return list(islice(batches, count))


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    """Two lists of host batches are equal: the same keys, bit for bit, the same dtypes."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key, strict=True)


def run_multidevice_script(module: str, out: Path) -> dict[str, np.ndarray]:
    """Run ``python -m module OUT.npz`` (a script that sets its own simulated device count)
    from the repository root; return the arrays it saved."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", module, str(out)], cwd=root, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as saved:
        return dict(saved)


class StopAfter(Hook):
    """Stops the run after ``step`` (a checkpoint is saved there)."""

    def __init__(self, step: int):
        self.step = step

    def after_step(self, step, state, metrics):
        if step == self.step:
            self.stop_reason = "stopped"

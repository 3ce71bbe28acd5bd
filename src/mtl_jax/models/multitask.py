"""A multi-task model as two pure functions of parameter pytrees.

Flax NNX modules define the trunk and the heads; ``nnx.split`` runs once here and the step
only sees

    encode(shared_params, batch, rng) -> z                     (the shared representation)
    decode(task_params, z, batch, rng) -> {task name: outputs}

with ``params = {"shared": ..., "tasks": {name: ...}}``. Gradient surgery applies to
``params["shared"]``; every entry of ``params["tasks"]`` is task-specific.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
from flax import nnx

from mtl_jax.models.task import Batch, Task

PyTree = Any


class MultiTaskModel(NamedTuple):
    """Pure functions of a shared-trunk, per-task-head model (see module docstring)."""

    encode: Callable[[PyTree, Batch, jax.Array | None], jax.Array]
    decode: Callable[[PyTree, jax.Array, Batch, jax.Array | None], dict[str, jax.Array]]
    tasks: tuple[Task, ...]

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def apply(self, params: PyTree, batch: Batch, rng: jax.Array | None = None) -> dict:
        """Full forward pass: per-task outputs. ``rng=None`` means deterministic (eval)."""
        z = self.encode(params["shared"], batch, rng)
        return self.decode(params["tasks"], z, batch, rng)


def _split_params(module: nnx.Module, what: str) -> tuple[nnx.GraphDef, PyTree]:
    rest = nnx.state(module, nnx.Not(nnx.Param))
    if jax.tree.leaves(rest):
        raise ValueError(
            f"{what} holds non-parameter state ({sorted(rest.flat_state().keys())[:3]}...);"
            " mtl_jax models keep only nnx.Param (use LayerNorm/GroupNorm, pass rngs at call time)."
        )
    graphdef, params = nnx.split(module, nnx.Param)
    return graphdef, nnx.to_pure_dict(params)


def _call_rngs(rng: jax.Array | None) -> nnx.Rngs | None:
    return None if rng is None else nnx.Rngs(dropout=rng)


def build_model(
    trunk: nnx.Module, feature_dim: int, tasks: Sequence[Task], rngs: nnx.Rngs
) -> tuple[MultiTaskModel, PyTree]:
    """Create one head per task on top of ``trunk``; return the pure model and its params.

    ``trunk(batch, rngs=...)`` must return the shared representation, whose last axis has
    ``feature_dim`` features; each head maps it to that task's outputs.
    """
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    trunk_def, shared = _split_params(trunk, "the trunk")
    heads = {task.name: _split_params(task.make_head(feature_dim, rngs), task.name) for task in tasks}
    head_defs: Mapping[str, nnx.GraphDef] = {name: h[0] for name, h in heads.items()}

    def encode(shared_params: PyTree, batch: Batch, rng: jax.Array | None) -> jax.Array:
        return nnx.merge(trunk_def, shared_params)(batch, rngs=_call_rngs(rng))

    def decode(task_params: PyTree, z: jax.Array, batch: Batch, rng: jax.Array | None) -> dict:
        del batch, rng  # linear heads; richer heads may read masks or use dropout
        return {name: nnx.merge(head_defs[name], task_params[name])(z) for name in names}

    params = {"shared": shared, "tasks": {name: h[1] for name, h in heads.items()}}
    return MultiTaskModel(encode, decode, tuple(tasks)), params

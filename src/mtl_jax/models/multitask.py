"""A multi-task model as two pure functions of parameter pytrees.

Flax NNX modules define the shared part and the per-task parts; ``nnx.split`` runs once here
and the step only sees

    encode(shared_params, batch, rng) -> z                     (the shared representation)
    decode(task_params, z, batch, rng) -> {task name: outputs}

with ``params = {"shared": ..., "tasks": {name: ...}}``. Gradient surgery applies to
``params["shared"]``; every entry of ``params["tasks"]`` is task-specific: only its task's
loss depends on it.

``z`` is any pytree of float arrays (a bare array for ``MLPTrunk``, a dict of leaves for the
trunks of ``mtl_jax.models.representation``, expert outputs for MMoE, ...); the step's
representation mode differentiates every leaf. Whatever a task module needs besides ``z``
(masks, its own gate's input) it reads from ``z`` or ``batch``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
from flax import nnx

from mtl_jax.models.task import Task
from mtl_jax.types import Batch
from mtl_jax.types import PyTree



class TaskModule(nnx.Module):
    """A per-task module called as ``module(z, batch, rngs=rngs)`` (heads, towers, gates).

    Plain modules (e.g. the ``nnx.Linear`` of ``classification_task``) are called as
    ``module(z)``.
    """

    def __call__(self, z: PyTree, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Any:
        raise NotImplementedError


class MultiTaskModel(NamedTuple):
    """Pure functions of a shared-trunk, per-task-head model (see module docstring)."""

    encode: Callable[[PyTree, Batch, jax.Array | None], PyTree]
    decode: Callable[[PyTree, PyTree, Batch, jax.Array | None], dict[str, jax.Array]]
    tasks: tuple[Task, ...]
    # every task module is a plain dense layer on z (``nnx.Linear``, its own dot_general):
    # representation mode then takes G from the heads' output gradients
    # (mtl_jax.surgery.linear_heads). A model whose decode is replaced must reset it.
    linear_heads: bool = False

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


def _task_rng(rng: jax.Array | None, index: int) -> jax.Array | None:
    """An independent dropout key per task module."""
    return None if rng is None else jax.random.fold_in(rng, index)


def _call_task_module(module: nnx.Module, z: PyTree, batch: Batch, rng: jax.Array | None):
    if isinstance(module, TaskModule):
        return module(z, batch, rngs=_call_rngs(rng))
    return module(z)


def _is_plain_dense(module: nnx.Module) -> bool:
    """``module(z) = z W + b`` exactly: an ``nnx.Linear`` (not a subclass) with JAX's dot_general."""
    return type(module) is nnx.Linear and module.dot_general is jax.lax.dot_general


def assemble_model(
    shared: nnx.Module, task_modules: Mapping[str, nnx.Module], tasks: Sequence[Task]
) -> tuple[MultiTaskModel, PyTree]:
    """Split NNX modules into the pure model and ``{"shared": ..., "tasks": {name: ...}}``.

    ``shared(batch, rngs=...)`` returns z; ``task_modules[name]`` maps z to that task's
    outputs (a ``TaskModule`` also receives the batch and its own dropout rngs).
    """
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    if set(task_modules) != set(names):
        raise ValueError(f"one module per task expected: tasks {names}, modules {sorted(task_modules)}")
    shared_def, shared_params = _split_params(shared, "the shared part")
    split = {name: _split_params(task_modules[name], f"task {name!r}") for name in names}
    task_defs: Mapping[str, nnx.GraphDef] = {name: s[0] for name, s in split.items()}

    def encode(shared_params: PyTree, batch: Batch, rng: jax.Array | None) -> PyTree:
        return nnx.merge(shared_def, shared_params)(batch, rngs=_call_rngs(rng))

    def decode(task_params: PyTree, z: PyTree, batch: Batch, rng: jax.Array | None) -> dict:
        return {
            name: _call_task_module(
                nnx.merge(task_defs[name], task_params[name]), z, batch, _task_rng(rng, index)
            )
            for index, name in enumerate(names)
        }

    params = {"shared": shared_params, "tasks": {name: s[1] for name, s in split.items()}}
    linear = all(_is_plain_dense(task_modules[name]) for name in names)
    return MultiTaskModel(encode, decode, tuple(tasks), linear_heads=linear), params


def build_model(
    trunk: nnx.Module, feature_dim: int, tasks: Sequence[Task], rngs: nnx.Rngs
) -> tuple[MultiTaskModel, PyTree]:
    """Hard parameter sharing (Caruana 1997): one trunk, one head per task on top of it.

    ``trunk(batch, rngs=...)`` returns the shared representation (an array whose last axis
    has ``feature_dim`` features, or a representation dict); ``task.make_head(feature_dim,
    rngs)`` maps it to that task's outputs. Shared: the trunk. Task-specific: the heads.
    """
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    heads = {task.name: task.make_head(feature_dim, rngs) for task in tasks}
    return assemble_model(trunk, heads, tasks)

"""Glue between trunks, multi-task architectures and heads.

* ``SharedEncoder``: trunk → representation dict (only the leaves the tasks read) → the
  architecture's shared body, e.g. MMoE's experts. Its output is the step's ``z``.
* ``TaskPath``: the architecture's task-specific body (a gate, a cross-stitch row, attention
  modules) → the task's head. It receives ``z`` and returns the head's outputs.

A body is an ``nnx.Module`` called as ``body(x, rngs=rngs)``; ``None`` means identity (hard
parameter sharing).
"""

from __future__ import annotations

from typing import Any, Sequence

from flax import nnx

from mtl_jax.models.multitask import TaskModule
from mtl_jax.models.representation import POOLED, as_representation
from mtl_jax.types import Batch


class SharedEncoder(nnx.Module):
    """``z = body(trunk(batch)[keys])`` (module docstring)."""

    def __init__(self, trunk: nnx.Module, keys: Sequence[str] | None = None, body: nnx.Module | None = None):
        self.trunk = trunk
        self.keys = None if keys is None else tuple(keys)
        self.body = body

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Any:
        representation = as_representation(self.trunk(batch, rngs=rngs))
        if self.keys is not None:
            missing = [key for key in self.keys if key not in representation]
            if missing:
                raise ValueError(
                    f"the trunk gives features {sorted(representation)}, the tasks need {missing}"
                )
            representation = {key: representation[key] for key in self.keys}
        return representation if self.body is None else self.body(representation, rngs=rngs)


class TaskPath(TaskModule):
    """``head(body(z))`` for one task (module docstring)."""

    def __init__(self, body: nnx.Module | None, head: nnx.Module):
        self.body = body
        self.head = head

    def __call__(self, z: Any, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Any:
        features = z if self.body is None else self.body(z, rngs=rngs)
        if isinstance(self.head, TaskModule):
            return self.head(features, batch, rngs=rngs)
        return self.head(as_representation(features)[POOLED])

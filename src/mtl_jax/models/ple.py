"""Customized Gate Control (CGC) and Progressive Layered Extraction (PLE), Tang et al. 2020,
"Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for
Personalized Recommendations", eq. 1–6.

One extraction level has shared experts E_s and, per task k, task experts E_k. Task k's gate
mixes [E_k(x_k); E_s(x_s)] from x_k (eq. 2–4); below the last level a shared gate mixes all
experts from x_s to give the next level's shared input (eq. 6). CGC is PLE with one level.
At level 1 every input is the trunk representation.

Partition (a parameter is task-specific iff only that task's loss reads it). The last
level has no shared gate, so: the last level's task experts and gates, task k's gate of the
level before it (its output only reaches task k's last level) and the towers are
task-specific; everything else — the levels below, every expert of the second-to-last level
(the shared gate mixes them) and the last level's shared experts — is shared. Per
representation leaf, ``z`` holds what those task-specific parts read: for CGC
``{"task_inputs": {k: x}, "shared_experts": E_s(x)}``; for PLE also the second-to-last
level's gate inputs and expert outputs (``"gate_inputs"``, ``"own_experts"``,
``"previous_shared_experts"``) in place of ``"task_inputs"``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.composition import SharedEncoder, TaskPath
from mtl_jax.models.experts import Experts, SoftmaxGate, mix
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.task import Task


def _gated(gate: SoftmaxGate, gate_input: jax.Array, expert_groups: Sequence[jax.Array]) -> jax.Array:
    return mix(gate(gate_input), jnp.concatenate(expert_groups, axis=-2))


class ExtractionLevel(nnx.Module):
    """A PLE level below the last: task experts, shared experts, task gates, shared gate.

    The task gates of the second-to-last level belong to the tasks (``task_gates=False``).
    """

    def __init__(self, names, in_features, num_shared, num_task, hidden, dropout, dtype, rngs, task_gates=True):
        make = lambda n: Experts(n, in_features, hidden, dropout=dropout, dtype=dtype, rngs=rngs)  # noqa: E731
        self.names = tuple(names)
        self.task_experts = nnx.Dict({name: make(num_task) for name in names})
        self.shared_experts = make(num_shared)
        self.task_gates = (
            nnx.Dict({name: SoftmaxGate(in_features, num_task + num_shared, dtype=dtype, rngs=rngs) for name in names})
            if task_gates
            else None
        )
        self.shared_gate = SoftmaxGate(in_features, len(names) * num_task + num_shared, dtype=dtype, rngs=rngs)

    def experts(self, task_inputs: dict, shared_input: jax.Array, rngs) -> tuple[dict, jax.Array]:
        own = {name: self.task_experts[name](task_inputs[name], rngs=rngs) for name in self.names}
        return own, self.shared_experts(shared_input, rngs=rngs)

    def shared_output(self, shared_input: jax.Array, own: dict, shared: jax.Array) -> jax.Array:
        return _gated(self.shared_gate, shared_input, [own[name] for name in self.names] + [shared])

    def __call__(self, task_inputs: dict, shared_input: jax.Array, rngs) -> tuple[dict, jax.Array]:
        own, shared = self.experts(task_inputs, shared_input, rngs)
        outputs = {name: _gated(self.task_gates[name], task_inputs[name], [own[name], shared]) for name in self.names}
        return outputs, self.shared_output(shared_input, own, shared)


class PLEBody(nnx.Module):
    """Shared: the levels below the last (but the task gates of the second-to-last), and the
    last level's shared experts."""

    def __init__(self, names, in_features, levels, num_shared, num_task, hidden, dropout, dtype, rngs):
        self.names = tuple(names)
        sizes = [in_features] + [hidden[-1]] * (levels - 1)
        self.levels = nnx.List(
            [
                ExtractionLevel(names, d, num_shared, num_task, hidden, dropout, dtype, rngs, task_gates=i < levels - 2)
                for i, d in enumerate(sizes[:-1])
            ]
        )
        self.last_shared_experts = Experts(num_shared, sizes[-1], hidden, dropout=dropout, dtype=dtype, rngs=rngs)

    def _one_leaf(self, x: jax.Array, rngs) -> dict:
        task_inputs, shared_input = {name: x for name in self.names}, x
        if not self.levels:
            return {"task_inputs": task_inputs, "shared_experts": self.last_shared_experts(x, rngs=rngs)}
        for level in self.levels[:-1]:
            task_inputs, shared_input = level(task_inputs, shared_input, rngs)
        previous = self.levels[-1]
        own, shared = previous.experts(task_inputs, shared_input, rngs)
        shared_input = previous.shared_output(shared_input, own, shared)
        return {
            "gate_inputs": task_inputs,
            "own_experts": own,
            "previous_shared_experts": shared,
            "shared_experts": self.last_shared_experts(shared_input, rngs=rngs),
        }

    def __call__(self, representation: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        return {key: self._one_leaf(x, rngs) for key, x in representation.items()}


class LastLevelTask(nnx.Module):
    """Task-specific: the task's gate of the second-to-last level (PLE only), then its
    last-level experts and gate over [own; shared] experts."""

    def __init__(self, name, in_features, previous_in, num_shared, num_task, hidden, dropout, dtype, rngs):
        self.name = name
        self.previous_gate = (
            None if previous_in is None else SoftmaxGate(previous_in, num_task + num_shared, dtype=dtype, rngs=rngs)
        )
        self.experts = Experts(num_task, in_features, hidden, dropout=dropout, dtype=dtype, rngs=rngs)
        self.gate = SoftmaxGate(in_features, num_task + num_shared, dtype=dtype, rngs=rngs)

    def _task_input(self, fields: dict) -> jax.Array:
        if self.previous_gate is None:
            return fields["task_inputs"][self.name]
        groups = [fields["own_experts"][self.name], fields["previous_shared_experts"]]
        return _gated(self.previous_gate, fields["gate_inputs"][self.name], groups)

    def __call__(self, z: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        outputs = {}
        for key, fields in z.items():
            x = self._task_input(fields)
            outputs[key] = _gated(self.gate, x, [self.experts(x, rngs=rngs), fields["shared_experts"]])
        return outputs


def build_ple(
    trunk: nnx.Module,
    feature_dim: int,
    tasks: Sequence[Task],
    *,
    keys: Sequence[str],
    levels: int = 2,
    num_shared_experts: int = 2,
    num_task_experts: int = 1,
    expert_hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
    dtype=None,
    rngs: nnx.Rngs,
) -> tuple[MultiTaskModel, PyTree]:
    """PLE with ``levels`` extraction levels over ``trunk`` (``levels=1``: CGC)."""
    if levels < 1:
        raise ValueError(f"PLE needs levels >= 1, got {levels}")
    names = [task.name for task in tasks]
    hidden = tuple(expert_hidden)
    body = PLEBody(names, feature_dim, levels, num_shared_experts, num_task_experts, hidden, dropout, dtype, rngs)
    last_in = feature_dim if levels == 1 else hidden[-1]
    previous_in = None if levels == 1 else (feature_dim if levels == 2 else hidden[-1])
    paths = {
        task.name: TaskPath(
            LastLevelTask(
                task.name, last_in, previous_in, num_shared_experts, num_task_experts, hidden, dropout, dtype, rngs
            ),
            task.make_head(hidden[-1], rngs),
        )
        for task in tasks
    }
    return assemble_model(SharedEncoder(trunk, keys, body), paths, tasks)

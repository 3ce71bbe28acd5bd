"""Multi-gate Mixture-of-Experts (Ma et al. 2018, eq. 5) and its DSelect-k variant
(Hazimeh et al. 2021, MMoE with DSelect-k gates).

    y_k = h^k(f^k(x)),   f^k(x) = Σ_e g^k(x)_e f_e(x),   x = trunk(batch).

Partition: the trunk and the E experts are shared (every task's loss reads them); task k's
gate g^k and tower h^k are task-specific (only loss k reads them). So
``z = {"inputs": x, "experts": f(x)}``: the gate input travels in z, and in the step's
representation mode the gradient reaching x through the gates counts too.
Each representation leaf (pooled, tokens) goes through the same experts and gates.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mtl_jax.models.composition import SharedEncoder, TaskPath
from mtl_jax.models.dselect_k import DSelectKGate
from mtl_jax.models.experts import Experts, SoftmaxGate, mix
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.task import Task

GATES = ("softmax", "dselect_k")


class ExpertsBody(nnx.Module):
    """Shared: x ↦ {"inputs": x, "experts": f(x)} leaf by leaf."""

    def __init__(self, experts: Experts):
        self.experts = experts

    def __call__(self, representation: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        outputs = jax.tree.map(lambda x: self.experts(x, rngs=rngs), representation)
        return {"inputs": representation, "experts": outputs}


class GatedMixture(nnx.Module):
    """Task-specific: z ↦ Σ_e g(x)_e f_e(x) leaf by leaf."""

    def __init__(self, gate: nnx.Module):
        self.gate = gate

    def __call__(self, z: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        return jax.tree.map(lambda x, e: mix(self.gate(x), e), z["inputs"], z["experts"])


def make_gate(kind: str, in_features: int, num_experts: int, *, top_k: int, dtype, rngs: nnx.Rngs):
    """A softmax (MMoE) or DSelect-k gate."""
    if kind == "softmax":
        return SoftmaxGate(in_features, num_experts, dtype=dtype, rngs=rngs)
    if kind == "dselect_k":
        return DSelectKGate(in_features, num_experts, k=top_k, dtype=dtype, rngs=rngs)
    raise ValueError(f"unknown gate {kind!r}; accepted: {GATES}")


def build_mmoe(
    trunk: nnx.Module,
    feature_dim: int,
    tasks: Sequence[Task],
    *,
    keys: Sequence[str],
    num_experts: int = 4,
    expert_hidden: Sequence[int] = (64,),
    gate: str = "softmax",
    top_k: int = 2,
    dropout: float = 0.0,
    dtype=None,
    rngs: nnx.Rngs,
) -> tuple[MultiTaskModel, PyTree]:
    """MMoE (``gate="softmax"``) or DSelect-k (``gate="dselect_k"``) over ``trunk``."""
    experts = Experts(num_experts, feature_dim, expert_hidden, dropout=dropout, dtype=dtype, rngs=rngs)
    shared = SharedEncoder(trunk, keys, ExpertsBody(experts))
    paths = {
        task.name: TaskPath(
            GatedMixture(make_gate(gate, feature_dim, num_experts, top_k=top_k, dtype=dtype, rngs=rngs)),
            task.make_head(experts.features, rngs),
        )
        for task in tasks
    }
    return assemble_model(shared, paths, tasks)

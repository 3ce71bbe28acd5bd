"""Learning to Branch (Guo, Lee & Ulbricht, "Learning to Branch for Multi-Task Learning",
ICML 2020, Sec. 3), as a tree search over dense blocks on top of the shared trunk.

The network has L branching layers. Layer l holds K_l candidate blocks (nodes); the last
layer holds one node per task (K_L = T). Every node j of layer l ≥ 2 chooses its parent
among the K_{l−1} nodes below through learnable logits α^l_j ∈ R^{K_{l−1}}, relaxed with the
Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017) during training (Sec. 3.2):

    p^l_j = softmax((α^l_j + γ) / τ),  γ_i ~ Gumbel(0, 1) i.i.d.,
    x^l_j = block^l_j( Σ_i p^l_{ji} x^{l−1}_i ),                                       (1)

with x^0 the trunk's representation (layer 1's nodes all read it: K_0 = 1, no logits). A
block is Dense → ReLU → Dropout. The noise is drawn once per step and node from the
step's dropout key (so every example and every device sees the same sampled tree); without
a key (evaluation) γ = 0, i.e. the deterministic relaxation softmax(α/τ). ``derived_tree``
gives the discrete tree the paper keeps after the search, each node's arg-max parent.

Deviations: the paper anneals τ over training and then trains the derived tree again (or
fine-tunes it); here τ is fixed (``temperature``) and the relaxed network is what is trained
and evaluated.

Partition: a node below the last layer can reach every task (the relaxation gives every
parent a positive weight), so layers 1 … L−1 and their logits are shared. Task k's node of
the last layer and its logits α^L_k are read by task k alone: task-specific, with the head.
``z = {leaf: (…, K_{L−1}, H_{L−1})}``, the nodes of layer L−1 (for L = 1, the trunk's
representation itself). Each representation leaf (pooled, tokens) goes through the same
blocks with the same sampled tree.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.composition import SharedEncoder, TaskPath
from mtl_jax.models.experts import StackedDense
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.task import Task


def parent_weights(logits: jax.Array, temperature: float, key: jax.Array | None) -> jax.Array:
    """softmax((α + γ)/τ) over the last axis (eq. 1); γ = 0 without a key."""
    logits = logits.astype(jnp.float32)
    if key is not None:
        logits = logits + jax.random.gumbel(key, logits.shape, jnp.float32)
    return jax.nn.softmax(logits / temperature, axis=-1)


def _key(rngs: nnx.Rngs | None) -> jax.Array | None:
    return None if rngs is None else rngs.dropout()


class BranchLayer(nnx.Module):
    """K nodes, each a Dense → ReLU → Dropout block on a Gumbel-softmax mix of the parents.

    ``parents=None``: the single parent is the trunk, (…, D) → (…, K, H); else
    (…, parents, D) → (…, K, H).
    """

    def __init__(self, num_nodes: int, parents: int | None, in_features: int, out_features: int, *,
                 dropout: float, dtype, rngs: nnx.Rngs):
        self.blocks = StackedDense(num_nodes, in_features, out_features, first=parents is None, dtype=dtype, rngs=rngs)
        self.logits = None if parents is None else nnx.Param(jnp.zeros((num_nodes, parents), jnp.float32))
        self.dropout = nnx.Dropout(dropout)

    def mix(self, x: jax.Array, weights: jax.Array | None) -> jax.Array:
        return x if weights is None else jnp.einsum("cp,...pd->...cd", weights.astype(x.dtype), x)

    def weights(self, temperature: float, rngs: nnx.Rngs | None) -> jax.Array | None:
        return None if self.logits is None else parent_weights(self.logits[...], temperature, _key(rngs))

    def __call__(self, x: jax.Array, weights: jax.Array | None, rngs: nnx.Rngs | None) -> jax.Array:
        y = nnx.relu(self.blocks(self.mix(x, weights)))
        return self.dropout(y, rngs=rngs, deterministic=rngs is None)


class SharedBranches(nnx.Module):
    """Shared: the branching layers below the task layer (module docstring)."""

    def __init__(self, nodes: Sequence[int], widths: Sequence[int], in_features: int, *,
                 temperature: float, dropout: float, dtype, rngs: nnx.Rngs):
        sizes = [in_features, *widths]
        parents = [None, *nodes[:-1]]
        self.layers = nnx.List([
            BranchLayer(k, p, a, b, dropout=dropout, dtype=dtype, rngs=rngs)
            for k, p, a, b in zip(nodes, parents, sizes[:-1], sizes[1:])
        ])
        self.temperature = temperature

    def __call__(self, representation: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        outputs = dict(representation)
        for layer in self.layers:
            weights = layer.weights(self.temperature, rngs)  # one sampled tree for every leaf
            outputs = {key: layer(x, weights, rngs) for key, x in outputs.items()}
        return outputs


class TaskBranch(nnx.Module):
    """Task-specific: the task's node of the last layer, with its parent logits."""

    def __init__(self, parents: int | None, in_features: int, out_features: int, *,
                 temperature: float, dropout: float, dtype, rngs: nnx.Rngs):
        self.layer = BranchLayer(1, parents, in_features, out_features, dropout=dropout, dtype=dtype, rngs=rngs)
        self.temperature = temperature

    def __call__(self, z: dict, *, rngs: nnx.Rngs | None = None) -> dict:
        weights = self.layer.weights(self.temperature, rngs)
        return {key: self.layer(x, weights, rngs)[..., 0, :] for key, x in z.items()}


def derived_tree(params: PyTree) -> dict:
    """The discrete tree after the search: each node's arg-max parent.

    Returns ``{"shared": [parents of layer 2, …, layer L−1] (one int array per layer),
    "tasks": {name: parent node of layer L−1}}``; empty / ``None`` where a layer has a single
    parent (the trunk).
    """
    layers = params["shared"]["body"]["layers"]
    shared = [np.asarray(layers[i]["logits"]).argmax(axis=-1) for i in sorted(layers) if "logits" in layers[i]]
    tasks = {}
    for name, task in params["tasks"].items():
        layer = task["body"]["layer"]
        tasks[name] = int(np.asarray(layer["logits"]).argmax(axis=-1)[0]) if "logits" in layer else None
    return {"shared": shared, "tasks": tasks}


def build_ltb(
    trunk: nnx.Module,
    feature_dim: int,
    tasks: Sequence[Task],
    *,
    keys: Sequence[str],
    branch_hidden: Sequence[int] = (64, 64),
    branch_nodes: int = 0,
    temperature: float = 1.0,
    dropout: float = 0.0,
    dtype=None,
    rngs: nnx.Rngs,
) -> tuple[MultiTaskModel, PyTree]:
    """LTB over ``trunk``: ``len(branch_hidden)`` branching layers of those widths, the last
    one per task; ``branch_nodes`` candidate nodes in each layer below it (0: one per task)."""
    widths = tuple(branch_hidden)
    if not widths or min(widths) < 1:
        raise ValueError(f"LTB needs at least one branching layer of positive width, got {widths}")
    if temperature <= 0:
        raise ValueError(f"LTB needs a Gumbel-softmax temperature > 0, got {temperature}")
    nodes = branch_nodes or len(tasks)
    shared_nodes = (nodes,) * (len(widths) - 1)
    body = SharedBranches(shared_nodes, widths[:-1], feature_dim, temperature=temperature,
                          dropout=dropout, dtype=dtype, rngs=rngs)
    last_in = widths[-2] if len(widths) > 1 else feature_dim
    last_parents = nodes if len(widths) > 1 else None
    paths = {
        task.name: TaskPath(
            TaskBranch(last_parents, last_in, widths[-1], temperature=temperature, dropout=dropout, dtype=dtype, rngs=rngs),
            task.make_head(widths[-1], rngs),
        )
        for task in tasks
    }
    return assemble_model(SharedEncoder(trunk, keys, body), paths, tasks)

"""Graph trunk for molecules (QM9): a message-passing network on a distance graph.

The MPNN framework of Gilmer et al. 2017 (eq. 1–3) with the continuous-filter convolution of
SchNet (Schütt et al. 2018, eq. 6–10) as message function:

* edges: atoms i ≠ j, both real, with distance d_ij < ``cutoff`` (Å);
* edge features: Gaussian radial basis e_k(d) = exp(-γ (d - μ_k)²), μ_k evenly spaced on
  [0, cutoff], γ = 1 / (2Δμ²), times the cosine cutoff ½(cos(π d / cutoff) + 1) so that
  messages fade to 0 at the cutoff;
* message: m_i = Σ_{j ∈ N(i)} W(e_ij) ⊙ (U h_j), W an MLP of the edge features;
* update (residual): h_i ← h_i + V₂ ssp(V₁ m_i), ssp(x) = softplus(x) - log 2;
* readout: sum over atoms of an MLP of h_i (extensive targets), or Set2Set.

Batches are padded to a fixed atom count (``atoms_mask``), so every shape is static under
jit; padding atoms have no edges and are left out of the readout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.representation import POOLED, Representation
from mtl_jax.models.set2set import Set2Set
from mtl_jax.types import Batch

READOUTS = ("sum", "set2set")


def shifted_softplus(x: jax.Array) -> jax.Array:
    """ssp(x) = log(1 + eˣ) - log 2 (SchNet eq. 9): 0 at 0, smooth."""
    return jax.nn.softplus(x) - math.log(2.0)


def pairwise_distances(positions: jax.Array) -> jax.Array:
    """(B, N, N) Euclidean distances, with a gradient-safe 0 on the diagonal."""
    diff = positions[:, :, None, :] - positions[:, None, :, :]
    squared = jnp.sum(diff * diff, axis=-1)
    safe = jnp.where(squared > 0, squared, 1.0)
    return jnp.where(squared > 0, jnp.sqrt(safe), 0.0)


def gaussian_rbf(distances: jax.Array, num_rbf: int, cutoff: float) -> jax.Array:
    """(…, num_rbf) Gaussian expansion exp(-γ (d - μ_k)²), γ = 1 / (2 Δμ²)."""
    centers = jnp.linspace(0.0, cutoff, num_rbf)
    spacing = cutoff / max(num_rbf - 1, 1)
    gamma = 0.5 / spacing**2
    return jnp.exp(-gamma * jnp.square(distances[..., None] - centers))


def cosine_cutoff(distances: jax.Array, cutoff: float) -> jax.Array:
    """½(cos(π d / cutoff) + 1) inside the cutoff, 0 beyond."""
    return jnp.where(distances < cutoff, 0.5 * (jnp.cos(math.pi * distances / cutoff) + 1.0), 0.0)


def distance_graph(positions: jax.Array, atoms_mask: jax.Array, cutoff: float):
    """(distances (B, N, N), edge weights (B, N, N)): cosine cutoff on the real edges i ≠ j."""
    distances = pairwise_distances(positions.astype(jnp.float32))
    n = atoms_mask.shape[1]
    real = atoms_mask[:, :, None] & atoms_mask[:, None, :] & ~jnp.eye(n, dtype=bool)
    return distances, jnp.where(real, cosine_cutoff(distances, cutoff), 0.0)


class Interaction(nnx.Module):
    """One message-passing step with continuous filters (module docstring)."""

    def __init__(self, features: int, num_rbf: int, dtype, rngs: nnx.Rngs):
        self.filter_in = nnx.Linear(num_rbf, features, dtype=dtype, rngs=rngs)
        self.filter_out = nnx.Linear(features, features, dtype=dtype, rngs=rngs)
        self.atom_in = nnx.Linear(features, features, use_bias=False, dtype=dtype, rngs=rngs)
        self.update_in = nnx.Linear(features, features, dtype=dtype, rngs=rngs)
        self.update_out = nnx.Linear(features, features, dtype=dtype, rngs=rngs)

    def __call__(self, h: jax.Array, rbf: jax.Array, edge_weights: jax.Array) -> jax.Array:
        filters = self.filter_out(shifted_softplus(self.filter_in(rbf)))
        filters = filters * edge_weights[..., None].astype(filters.dtype)
        messages = jnp.einsum("bijf,bjf->bif", filters, self.atom_in(h))
        return h + self.update_out(shifted_softplus(self.update_in(messages)))


class MessagePassingTrunk(nnx.Module):
    """``{"pooled": (B, features)}`` of a padded batch of molecules (module docstring)."""

    def __init__(
        self,
        num_atom_types: int,
        *,
        hidden: int = 64,
        num_layers: int = 3,
        num_rbf: int = 32,
        cutoff: float = 5.0,
        readout: str = "sum",
        set2set_steps: int = 3,
        input_key: str = "atomic_numbers",
        positions_key: str = "positions",
        mask_key: str = "atoms_mask",
        dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; accepted: {READOUTS}")
        self.embed = nnx.Embed(num_atom_types, hidden, dtype=dtype, rngs=rngs)
        self.interactions = nnx.List([Interaction(hidden, num_rbf, dtype, rngs) for _ in range(num_layers)])
        self.atom_out = nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs)
        self.set2set = Set2Set(hidden, steps=set2set_steps, dtype=dtype, rngs=rngs) if readout == "set2set" else None
        self.dropout = nnx.Dropout(dropout)
        self.num_rbf, self.cutoff, self.readout = num_rbf, cutoff, readout
        self.input_key, self.positions_key, self.mask_key = input_key, positions_key, mask_key
        self.features = 2 * hidden if readout == "set2set" else hidden

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        atoms = jnp.asarray(batch[self.input_key]).astype(jnp.int32)
        mask = batch.get(self.mask_key)
        mask = atoms > 0 if mask is None else jnp.asarray(mask).astype(bool)
        distances, edge_weights = distance_graph(jnp.asarray(batch[self.positions_key]), mask, self.cutoff)
        h = self.embed(atoms)
        rbf = gaussian_rbf(distances, self.num_rbf, self.cutoff).astype(h.dtype)
        for interaction in self.interactions:
            h = interaction(h, rbf, edge_weights) * mask[..., None].astype(h.dtype)
        h = self.atom_out(h) * mask[..., None].astype(h.dtype)
        if self.set2set is not None:
            pooled = self.set2set(h, mask)
        else:
            pooled = jnp.sum(h, axis=1)
        return {POOLED: self.dropout(pooled, rngs=rngs, deterministic=rngs is None)}

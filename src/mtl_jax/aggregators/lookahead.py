"""The look-ahead step shared by the meta weightings (Auto-Lambda, MOML, FORUM).

All three differentiate an upper-level loss through one (or K) inner gradient steps of a
weighted lower-level loss,

    θ'(λ) = θ − α ∇_θ Σ_t λ_t L_t(θ; B_train).                                      (1)

θ' is *linear* in λ, with ∂θ'/∂λ_s = −α g_s, g_s = ∇_θ L_s(θ; B_train). So for any upper-level
loss U, the hypergradient is exact with first derivatives only:

    ∂U(θ')/∂λ_s = −α ⟨∇U(θ'), g_s⟩ = −α · (d/dε) L_s(θ + ε ∇U(θ'); B_train) |_{ε=0},   (2)

one backward pass at θ' and one forward-mode (JVP) pass of the training losses at θ along
∇U(θ'). No Hessian and no finite difference: (2) is the exact derivative of U(θ'(λ)).

Everything here works on parameter pytrees; inside the step's ``shard_map`` the losses are
global means, so every gradient and JVP below is already the global one.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mtl_jax.types import PyTree

LossFn = Callable[[PyTree, PyTree], jax.Array]


def tree_dot(a: PyTree, b: PyTree) -> jax.Array:
    """⟨a, b⟩ summed over every leaf."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_axpy(scale: jax.Array | float, x: PyTree, y: PyTree) -> PyTree:
    """y + scale·x, leaf by leaf (in y's dtypes)."""
    return jax.tree.map(lambda xi, yi: (yi + scale * xi).astype(yi.dtype), x, y)


def weighted_gradient(loss_fn: LossFn, params: PyTree, batch: PyTree, weights: jax.Array) -> tuple[jax.Array, PyTree]:
    """(L(θ) (T,), ∇_θ Σ_t w_t L_t(θ)) from one backward pass; ``weights`` is held constant."""
    losses, vjp_fn = jax.vjp(lambda p: loss_fn(p, batch), params)
    (grads,) = vjp_fn(jax.lax.stop_gradient(weights).astype(losses.dtype))
    return losses, grads


def look_ahead(params: PyTree, grads: PyTree, learning_rate: float) -> PyTree:
    """θ' = θ − α·grads (eq. 1, one plain gradient step)."""
    return tree_axpy(-learning_rate, grads, params)


def directional_losses(loss_fn: LossFn, params: PyTree, batch: PyTree, tangent: PyTree) -> jax.Array:
    """(T,) ⟨∇L_t(θ), v⟩ for every task: one JVP of the losses along ``tangent`` (eq. 2)."""
    _, derivatives = jax.jvp(lambda p: loss_fn(p, batch), (params,), (tangent,))
    return derivatives


def task_gradients(loss_fn: LossFn, params: PyTree, batch: PyTree) -> tuple[jax.Array, PyTree]:
    """(L(θ) (T,), J): every leaf of J has a leading task axis, row t = ∇_θ L_t(θ)."""
    losses, vjp_fn = jax.vjp(lambda p: loss_fn(p, batch), params)
    cotangents = jnp.eye(losses.shape[0], dtype=losses.dtype)
    (rows,) = jax.vmap(vjp_fn)(cotangents)
    return losses, rows


def cross_products(loss_fn: LossFn, params: PyTree, batch: PyTree, rows: PyTree) -> jax.Array:
    """(R, T) M_rs = ⟨row_r, ∇L_s(θ; batch)⟩: one JVP of the losses per row of ``rows``."""
    return jax.vmap(lambda row: directional_losses(loss_fn, params, batch, row))(rows)


def row_gramian(rows: PyTree) -> jax.Array:
    """(R, R) inner products of the rows of a pytree whose leaves lead with a row axis."""
    return sum(
        jnp.einsum("r...,s...->rs", leaf, leaf) for leaf in jax.tree.leaves(rows)
    )


def softmax_jacobian(logits: jax.Array) -> jax.Array:
    """(T, T) ∂softmax(a)/∂a = diag(p) − p pᵀ, p = softmax(a) (symmetric)."""
    p = jax.nn.softmax(logits)
    return jnp.diag(p) - jnp.outer(p, p)

"""A two-layer linear model for the meta weightings' float64 references.

Task t predicts y_t = x W v_t and has the loss L_t = mean_i (x_i W v_t − y_it)². The JAX side
is a ``loss_fn(params, batch)`` over ``{"shared": {"w"}, "tasks": {"t<k>": {"v"}}}``; the
NumPy side works on the flat vector θ = [vec W, v_0, …, v_{T−1}] with analytic gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregators.kinds import MetaInputs


def random_problem(rng: np.random.Generator, num_tasks: int, n: int = 12, d: int = 4, h: int = 3):
    """(θ, train (X, Y), meta (X, Y), shapes) with fresh random values."""
    theta = rng.standard_normal(d * h + num_tasks * h) * 0.7
    train = (rng.standard_normal((n, d)), rng.standard_normal((n, num_tasks)))
    meta = (rng.standard_normal((n, d)), rng.standard_normal((n, num_tasks)))
    return theta, train, meta, (d, h, num_tasks)


def unpack(theta: np.ndarray, shapes) -> tuple[np.ndarray, np.ndarray]:
    d, h, num_tasks = shapes
    return theta[: d * h].reshape(d, h), theta[d * h:].reshape(num_tasks, h)


def np_losses(theta: np.ndarray, data, shapes) -> np.ndarray:
    w, v = unpack(theta, shapes)
    x, y = data
    residuals = x @ w @ v.T - y  # (n, T)
    return (residuals ** 2).mean(axis=0)


def np_jacobian(theta: np.ndarray, data, shapes) -> np.ndarray:
    """(T, P) rows ∇_θ L_t, analytic."""
    d, h, num_tasks = shapes
    w, v = unpack(theta, shapes)
    x, y = data
    residuals = x @ w @ v.T - y
    n = x.shape[0]
    rows = np.zeros((num_tasks, theta.size))
    for t in range(num_tasks):
        grad_w = (2.0 / n) * np.outer(x.T @ residuals[:, t], v[t])
        grad_v = (2.0 / n) * (w.T @ x.T @ residuals[:, t])
        rows[t, : d * h] = grad_w.ravel()
        rows[t, d * h + t * h: d * h + (t + 1) * h] = grad_v
    return rows


def to_params(theta: np.ndarray, shapes) -> dict:
    w, v = unpack(theta, shapes)
    return {"shared": {"w": jnp.asarray(w)}, "tasks": {f"t{t}": {"v": jnp.asarray(v[t])} for t in range(len(v))}}


def from_params(params: dict, shapes) -> np.ndarray:
    num_tasks = shapes[2]
    parts = [np.asarray(params["shared"]["w"], np.float64).ravel()]
    parts += [np.asarray(params["tasks"][f"t{t}"]["v"], np.float64) for t in range(num_tasks)]
    return np.concatenate(parts)


def to_batch(data) -> dict:
    return {"x": jnp.asarray(data[0]), "y": jnp.asarray(data[1])}


def loss_fn(params: dict, batch: dict) -> jax.Array:
    heads = jnp.stack([params["tasks"][f"t{t}"]["v"] for t in range(len(params["tasks"]))])
    residuals = batch["x"] @ params["shared"]["w"] @ heads.T - batch["y"]
    return (residuals ** 2).mean(axis=0)


@functools.lru_cache(maxsize=None)
def _jitted(aggregator):
    """``aggregator.update`` compiled once per aggregator (and shapes)."""

    def update(params, batch, meta_batch, step, state):
        return aggregator.update(MetaInputs(loss_fn, params, batch, meta_batch, jax.random.key(0), step), state)

    return jax.jit(update)


def run_update(aggregator, theta, train, meta, shapes, state=None, step: int = 0):
    """(grads as flat float64, losses, weights, new state) of one ``update`` in float64."""
    with jax.enable_x64(True):
        state = aggregator.init(shapes[2]) if state is None else state
        result = _jitted(aggregator)(to_params(theta, shapes), to_batch(train), to_batch(meta), jnp.asarray(step), state)
        return (from_params(result.grads, shapes), np.asarray(result.losses, np.float64),
                np.asarray(result.weights, np.float64), result.state)


def adam_first_steps(gradients: list[np.ndarray], start: np.ndarray, lr: float) -> list[np.ndarray]:
    """Adam (β1=0.9, β2=0.999, ε=1e-8) iterates from ``start`` along ``gradients``."""
    x, m, v, out = start.astype(np.float64).copy(), 0.0, 0.0, []
    for k, g in enumerate(gradients, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g ** 2
        x = x - lr * (m / (1 - 0.9 ** k)) / (np.sqrt(v / (1 - 0.999 ** k)) + 1e-8)
        out.append(x.copy())
    return out


def central_difference(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(∂fn/∂x) by central differences: rows are fn's outputs, columns x's entries."""
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        columns.append((np.asarray(fn(x + e)) - np.asarray(fn(x - e))) / (2 * h))
    return np.stack(columns, axis=-1)

"""Gradient-conflict statistics read off the Gramian at no extra pass over the parameters.

cos_ij = G_ij / sqrt(G_ii G_jj) (docs/design.md); a pair conflicts when cos_ij < 0
(Yu et al. 2020, Definition 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gradient_norms(gramian: jax.Array) -> jax.Array:
    """‖g_t‖ = sqrt(G_tt), (T,)."""
    return jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))


def cosine_matrix(gramian: jax.Array) -> jax.Array:
    """(T, T) cosine similarities; rows and columns of zero-norm tasks are 0."""
    norms = gradient_norms(gramian)
    outer = norms[:, None] * norms[None, :]
    return jnp.where(outer > 0, gramian / jnp.where(outer > 0, outer, 1.0), 0.0)


def conflict_fraction(gramian: jax.Array) -> jax.Array:
    """Fraction of the T(T−1)/2 task pairs whose gradients have a negative inner product."""
    num_tasks = gramian.shape[0]
    if num_tasks < 2:
        return jnp.zeros((), gramian.dtype)
    upper = jnp.triu(jnp.ones((num_tasks, num_tasks), bool), k=1)
    conflicts = jnp.sum((gramian < 0) & upper)
    return conflicts / (num_tasks * (num_tasks - 1) / 2)


def gradient_statistics(gramian: jax.Array) -> dict[str, jax.Array]:
    """The step's gradient metrics: norms, cosine matrix and conflicting-pair fraction."""
    return {
        "grad_norm": gradient_norms(gramian),
        "grad_cosine": cosine_matrix(gramian),
        "conflict_fraction": conflict_fraction(gramian),
    }


# --- Per-layer statistics (``gradient_stats: "per_layer"``) --------------------------------
#
# The Gramian is a sum over parameter leaves, G = Σ_ℓ J_ℓ J_ℓᵀ, so grouping the leaves of
# the shared parameters by the module they belong to splits it exactly into per-module
# Gramians, G = Σ_m G^(m), each read off the same per-task gradients. From G^(m) come the
# same statistics as above, per module: where in the trunk do the tasks pull apart?

LAYER_SEPARATOR = "."


def _key_name(entry) -> str:
    """The name of one pytree path entry (a dict key, an attribute or a list index)."""
    for attribute in ("key", "name", "idx"):
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def _is_index(entry) -> bool:
    value = getattr(entry, "key", getattr(entry, "idx", None))
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _wrapper_depth(tree) -> int:
    """How many leading single-key containers wrap the modules (e.g. ``{"trunk": {...}}``)."""
    depth, node = 0, tree
    while isinstance(node, dict) or hasattr(node, "items"):
        keys = list(node.keys()) if hasattr(node, "keys") else []
        if len(keys) != 1:
            break
        node, depth = node[keys[0]], depth + 1
    return depth


def layer_name(path, wrapper_depth: int = 0) -> str:
    """The top-level module a leaf belongs to, from its pytree path.

    Leading single-key wrappers are skipped; the name is the first remaining key, extended by
    the index that follows it when the module is one of a list (``layers.0``,
    ``forward_cells.1``, ``blocks.3``); a leaf at the top is its own group.
    """
    rest = list(path)[wrapper_depth:]
    if not rest:
        return "params"
    parts = [_key_name(rest[0])]
    if len(rest) > 1 and _is_index(rest[1]):
        parts.append(_key_name(rest[1]))
    return LAYER_SEPARATOR.join(parts)


def layer_groups(tree) -> dict[str, list[int]]:
    """``{module name: indices of its leaves in jax.tree.leaves(tree) order}``, in first-seen order.

    ``tree`` is the shared-parameter pytree or a Jacobian pytree of it (same structure).
    """
    depth = _wrapper_depth(tree)
    groups: dict[str, list[int]] = {}
    for index, (path, _) in enumerate(jax.tree_util.tree_leaves_with_path(tree)):
        groups.setdefault(layer_name(path, depth), []).append(index)
    return groups


def layer_gramians(jacobian, groups: dict[str, list[int]] | None = None) -> dict[str, jax.Array]:
    """``{module: G^(m)}`` with G^(m)_ij = Σ_{ℓ ∈ m} ⟨g_i^ℓ, g_j^ℓ⟩, (T, T) each, float32.

    ``jacobian`` has a leading task axis of size T on every leaf. Σ_m G^(m) is the whole
    Gramian (``mtl_jax.aggregators.gramian.gramian``).
    """
    leaves = jax.tree.leaves(jacobian)
    if not leaves:
        raise ValueError("layer_gramians() got an empty Jacobian pytree: there are no shared parameters.")
    groups = layer_groups(jacobian) if groups is None else groups
    gramians = {}
    for name, indices in groups.items():
        rows = [leaves[i].reshape(leaves[i].shape[0], -1).astype(jnp.float32) for i in indices]
        gramians[name] = sum(
            jnp.matmul(r, r.T, precision=jax.lax.Precision.HIGHEST) for r in rows
        )
    return gramians


def layer_statistics(jacobian, groups: dict[str, list[int]] | None = None) -> dict[str, dict[str, jax.Array]]:
    """``{module: gradient_statistics(G^(m))}``: per-module norms, cosines and conflict fraction."""
    return {name: gradient_statistics(g) for name, g in layer_gramians(jacobian, groups).items()}


def layer_scalars(statistics, task_names) -> dict[str, float]:
    """Flat metric names for :func:`layer_statistics` (host arrays), as logged in ``metrics.jsonl``:

    ``layer_grad_norm/<module>/<task>``, ``layer_grad_cosine/<module>/<a>~<b>`` (upper
    triangle) and ``layer_conflict_fraction/<module>``.
    """
    import numpy as np  # noqa: PLC0415 - host side only

    scalars: dict[str, float] = {}
    for module, stats in statistics.items():
        norms = np.asarray(stats["grad_norm"]).reshape(-1)
        cosine = np.asarray(stats["grad_cosine"])
        for name, value in zip(task_names, norms):
            scalars[f"layer_grad_norm/{module}/{name}"] = float(value)
        for i, a in enumerate(task_names):
            for j in range(i + 1, len(task_names)):
                scalars[f"layer_grad_cosine/{module}/{a}~{task_names[j]}"] = float(cosine[i, j])
        scalars[f"layer_conflict_fraction/{module}"] = float(np.asarray(stats["conflict_fraction"]))
    return scalars

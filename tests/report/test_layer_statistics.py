"""Per-layer Gramians and cosines against a float64 NumPy reference (Yu et al. 2020, Def. 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregators.gramian import gramian
from mtl_jax.surgery.gradient_stats import layer_groups, layer_scalars, layer_statistics

SHAPES = {
    "embed": {"embedding": (7, 3)},
    "forward_cells": [{"dense_h": {"kernel": (3, 4)}}, {"dense_h": {"kernel": (4, 4), "bias": (4,)}}],
    "head_norm": {"scale": (5,)},
}
EXPECTED_GROUPS = {
    "embed": ["embed/embedding"],
    "forward_cells.0": ["forward_cells/0/dense_h/kernel"],
    "forward_cells.1": ["forward_cells/1/dense_h/bias", "forward_cells/1/dense_h/kernel"],
    "head_norm": ["head_norm/scale"],
}


def _random_jacobian(rng: np.random.Generator, num_tasks: int) -> tuple[dict, dict[str, np.ndarray]]:
    """A {"trunk": ...} Jacobian pytree and, per expected group, its float64 (T, P_m) rows."""
    flat: dict[str, np.ndarray] = {}

    def build(node, prefix):
        if isinstance(node, tuple):
            value = rng.standard_normal((num_tasks, *node))
            flat[prefix] = value
            return jnp.asarray(value, jnp.float32)
        if isinstance(node, list):
            return [build(v, f"{prefix}/{i}") for i, v in enumerate(node)]
        return {k: build(v, f"{prefix}/{k}" if prefix else k) for k, v in node.items()}

    tree = {"trunk": build(SHAPES, "")}
    rows = {g: np.concatenate([flat[p].reshape(num_tasks, -1) for p in paths], axis=1)
            for g, paths in EXPECTED_GROUPS.items()}
    return tree, rows


def _reference(rows: np.ndarray) -> dict[str, np.ndarray]:
    g = rows @ rows.T
    norms = np.sqrt(np.diag(g))
    outer = np.outer(norms, norms)
    cosine = np.divide(g, outer, out=np.zeros_like(g), where=outer > 0)
    t = g.shape[0]
    pairs = [(i, j) for i in range(t) for j in range(i + 1, t)]
    conflict = np.mean([g[i, j] < 0 for i, j in pairs]) if pairs else 0.0
    return {"grad_norm": norms, "grad_cosine": cosine, "conflict_fraction": conflict}


def test_groups_follow_the_first_key_and_list_index(rng):
    tree, _ = _random_jacobian(rng, 2)
    groups = layer_groups(tree)
    assert sorted(groups) == sorted(EXPECTED_GROUPS)
    sizes = {g: len(idx) for g, idx in groups.items()}
    assert sizes == {g: len(p) for g, p in EXPECTED_GROUPS.items()}
    assert sorted(i for idx in groups.values() for i in idx) == list(range(len(jax.tree.leaves(tree))))


@pytest.mark.parametrize("num_tasks", [1, 4])
def test_layer_statistics_match_float64_reference(rng, num_tasks):
    tree, rows = _random_jacobian(rng, num_tasks)
    stats = layer_statistics(tree)
    for group, reference in ((g, _reference(r)) for g, r in rows.items()):
        np.testing.assert_allclose(stats[group]["grad_norm"], reference["grad_norm"], rtol=1e-5)
        np.testing.assert_allclose(stats[group]["grad_cosine"], reference["grad_cosine"], rtol=1e-4, atol=1e-5)
        assert float(stats[group]["conflict_fraction"]) == pytest.approx(reference["conflict_fraction"])


def test_layer_gramians_sum_to_the_whole_gramian(rng):
    tree, rows = _random_jacobian(rng, 4)
    from mtl_jax.surgery.gradient_stats import layer_gramians

    total = sum(np.asarray(g, np.float64) for g in layer_gramians(tree).values())
    np.testing.assert_allclose(total, np.asarray(gramian(tree)), rtol=1e-4, atol=1e-4)
    all_rows = np.concatenate(list(rows.values()), axis=1)
    np.testing.assert_allclose(total, all_rows @ all_rows.T, rtol=1e-4, atol=1e-4)


def test_zero_gradient_in_one_layer_gives_zero_cosines_there(rng):
    tree, rows = _random_jacobian(rng, 3)
    tree["trunk"]["embed"]["embedding"] = tree["trunk"]["embed"]["embedding"].at[1].set(0.0)
    stats = layer_statistics(tree)
    embed = np.asarray(stats["embed"]["grad_cosine"])
    assert np.asarray(stats["embed"]["grad_norm"])[1] == 0.0
    assert np.all(embed[1] == 0.0) and np.all(embed[:, 1] == 0.0)
    reference = _reference(rows["forward_cells.0"])
    np.testing.assert_allclose(stats["forward_cells.0"]["grad_cosine"], reference["grad_cosine"], rtol=1e-4, atol=1e-5)


def test_layer_statistics_jit_and_flat_names(rng):
    tree, rows = _random_jacobian(rng, 3)
    stats = jax.device_get(jax.jit(layer_statistics)(tree))
    scalars = layer_scalars(stats, ["a", "b", "c"])
    reference = _reference(rows["forward_cells.1"])
    assert scalars["layer_grad_cosine/forward_cells.1/a~c"] == pytest.approx(reference["grad_cosine"][0, 2], abs=1e-5)
    assert scalars["layer_grad_norm/embed/b"] == pytest.approx(_reference(rows["embed"])["grad_norm"][1], rel=1e-5)
    assert scalars["layer_conflict_fraction/head_norm"] == pytest.approx(_reference(rows["head_norm"])["conflict_fraction"])
    assert len(scalars) == 4 * (3 + 3 + 1)

"""The Gramian engine's per-site rules (mtl_jax.surgery.gramian_engine) on small trunks.

Each rule's block of G = J Jᵀ, in both of its forms — (a) the T per-task gradients of the
leaf contracted, (b) the Gram trick from the rows (X Xᵀ for dense layers and im2col
patches, [i_n = i_n'] for an embedding lookup, X Xᵀ + 1 1ᵀ for a dense layer with its bias) —
must equal the materialised Jacobian's J Jᵀ in float64 (design note, "The Gramian engine"),
and the direction must equal Jᵀw. Which form a leaf takes is forced through the cost tests.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.surgery import gramian_engine as engine

TASKS = 3
VOCAB = 7


def _losses(task_params, z):
    """T smooth task losses of the representation: L_t = mean_n((z_n · a_t)²) + Σ_n sin(z_n) · b_t / |z|."""
    flat = z.reshape(z.shape[0], -1)
    return jnp.mean((flat @ task_params["a"]) ** 2, axis=0) + jnp.sin(flat).sum(0) @ task_params["b"] / flat.size


def _embed_encode(shared, batch, rng):
    """A lookup (with an out-of-range id dropped), a dense layer with bias, a second lookup."""
    rows = jnp.take(shared["table"], batch["ids"], axis=0)  # (B, L, D); ids == VOCAB give NaN-free zeros below
    rows = jnp.where(batch["ids"][..., None] < VOCAB, rows, 0.0)
    hidden = jnp.tanh(rows @ shared["w"] + shared["b"])
    return hidden.mean(1) + jnp.take(shared["table"], batch["first"], axis=0) @ shared["w"]


def _conv_encode(shared, batch, rng):
    """Two convolutions (NHWC/HWIO with stride and SAME padding; NCHW/OIHW dilated) and a bias."""
    y = jax.lax.conv_general_dilated(batch["image"], shared["k1"], (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jnp.tanh(y + shared["c1"])
    y = jnp.transpose(y, (0, 3, 1, 2))
    y = jax.lax.conv_general_dilated(y, shared["k2"], (1, 1), "VALID", rhs_dilation=(2, 1))
    return jnp.tanh(y).reshape(y.shape[0], -1)


def _dense_encode(shared, batch, rng):
    """Dense layers with biases (the bias rides on the kernel's Δ)."""
    h = jax.nn.relu(batch["x"] @ shared["w1"] + shared["b1"])
    return jnp.tanh(h @ shared["w2"] + shared["b2"])


def _case(name: str, rng: np.random.Generator):
    normal = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    if name == "embedding":
        ids = rng.integers(0, VOCAB, (3, 4))
        ids[0, 0] = VOCAB  # out of range: the lookup drops it
        ids[1] = ids[2]  # repeated ids across examples
        shared = {"table": normal(VOCAB, 5), "w": normal(5, 4), "b": normal(4)}
        batch = {"ids": ids, "first": ids[:, 1]}
        return _embed_encode, shared, batch, 4
    if name == "conv":
        shared = {"k1": normal(3, 3, 2, 3), "c1": normal(3), "k2": normal(2, 3, 2, 2)}
        return _conv_encode, shared, {"image": normal(2, 6, 5, 2)}, 2 * 2 * 1
    shared = {"w1": normal(6, 5), "b1": normal(5), "w2": normal(5, 4), "b2": normal(4)}
    return _dense_encode, shared, {"x": normal(4, 6)}, 4


def _engine_against_reference(name: str, rng: np.random.Generator) -> tuple[float, float, dict]:
    encode, shared, batch, features = _case(name, rng)
    tasks = {"a": rng.standard_normal((features, TASKS)), "b": rng.standard_normal((features, TASKS))}
    weights = rng.standard_normal(TASKS)
    params = {"shared": shared, "tasks": tasks}
    model = SimpleNamespace(encode=encode)

    def run(params, batch):
        result = engine.gramian_engine(model, params, batch, None, None, losses_of=_losses)
        return result.gramian, result.direction(jnp.asarray(weights))

    gram, direction = jax.jit(run)(params, batch)
    jac = jax.jit(jax.jacrev(lambda s, batch: _losses(tasks, encode(s, batch, None))))(shared, batch)  # one compile, not op by op
    rows = np.concatenate([np.asarray(jac[k]).reshape(TASKS, -1) for k in sorted(shared)], 1)
    ref_gram, ref_direction = rows @ rows.T, weights @ rows
    got = np.concatenate([np.asarray(direction[k]).ravel() for k in sorted(shared)])
    leaves, treedef = jax.tree.flatten(shared)
    plan = engine.plan_encode(encode, leaves, treedef, batch, None)
    kinds = {jax.tree_util.keystr(path): sorted({s.kind for s in plan.sites if s.leaf == i})
             for i, (path, _) in enumerate(jax.tree_util.tree_flatten_with_path(shared)[0])}
    return (
        float(np.linalg.norm(np.asarray(gram) - ref_gram) / np.linalg.norm(ref_gram)),
        float(np.linalg.norm(got - ref_direction) / np.linalg.norm(ref_direction)),
        kinds,
    )


@pytest.mark.parametrize("gram_trick", [True, False], ids=["gram-trick", "per-task"])
@pytest.mark.parametrize("name", ["embedding", "conv", "dense"])
def test_each_rule_in_both_forms_equals_the_jacobian(name, gram_trick, rng, monkeypatch):
    monkeypatch.setattr(engine, "gram_trick_is_cheaper", lambda *a: gram_trick)
    monkeypatch.setattr(engine, "lookup_gram_is_cheaper", lambda *a: gram_trick)
    with jax.enable_x64(True):
        gram_error, direction_error, kinds = _engine_against_reference(name, rng)
    assert gram_error < 1e-10, (gram_error, kinds)
    assert direction_error < 1e-10, (direction_error, kinds)
    expected = {
        "embedding": {"['table']": ["gather"], "['w']": ["dot"], "['b']": ["add"]},
        "conv": {"['k1']": ["conv"], "['c1']": ["add"], "['k2']": ["conv"]},
        "dense": {"['w1']": ["dot"], "['b1']": ["add"], "['w2']": ["dot"], "['b2']": ["add"]},
    }[name]
    assert kinds == expected  # every leaf is tapped: no per-task-gradient fallback


def test_lookup_cost_prefers_the_scatter_for_long_batches_and_the_gram_trick_for_short():
    assert engine.lookup_gram_is_cheaper(rows=64, vocab=30_000, m=128, num_tasks=8)
    assert not engine.lookup_gram_is_cheaper(rows=4096, vocab=100, m=64, num_tasks=8)


def test_a_bias_rides_on_its_dense_layer_only_when_added_to_that_output_alone(rng):
    shared = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2), "v": rng.standard_normal(2)}
    x = {"x": rng.standard_normal((4, 3))}

    def riding(s, batch, rng):
        return jnp.tanh(batch["x"] @ s["w"] + s["b"]) * s["v"]

    def shared_output(s, batch, rng):  # the product is read twice: b's Δ is not w's
        y = batch["x"] @ s["w"]
        return jnp.tanh(y + s["b"]) + y

    for encode, rides in ((riding, True), (shared_output, False)):
        leaves, treedef = jax.tree.flatten(shared)
        plan = engine.plan_encode(encode, leaves, treedef, x, None)
        dense = {s.site_id for s in plan.sites if s.kind == engine.DOT}
        biases = [s for s in plan.sites if s.kind == engine.ADD]
        assert biases and all((s.bias_of in dense) == rides for s in biases)
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(shared)[0]]
        assert paths.index("['v']") not in plan.tapped  # v scales an activation element-wise: not a site

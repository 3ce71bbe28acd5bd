"""Learning to Branch (Guo et al. 2020): its shared / task-specific partition through per-task
gradients, its shapes, the Gumbel-softmax relaxation of eq. (1) against a NumPy reference,
the derived tree, and its config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax.errors import ConfigError
from mtl_jax.models.factory import build_from_config
from mtl_jax.models.ltb import derived_tree, parent_weights
from tests.models.fixtures import SMALL, TABLE, TEXT, random_batch, task_names
from tests.models.test_partition import check_partition

LTB = dict(SMALL, architecture="ltb", branch_hidden=(8, 6, 5), tower=(4,))


@pytest.mark.parametrize("branch_hidden,branch_nodes", [((6, 6, 5), 2), ((5,), 0)])
def test_partition_on_features(rng, branch_hidden, branch_nodes):
    config = dict(LTB, branch_hidden=branch_hidden, branch_nodes=branch_nodes)
    model, params = build_from_config(config, TABLE, task_names(TABLE), nnx.Rngs(0))
    check_partition(model, params, random_batch(rng, TABLE, batch_size=8))
    # the task-specific part is exactly the last node, its parent logits (if any) and the head
    task = params["tasks"][task_names(TABLE)[0]]
    assert set(task) == {"body", "head"}
    assert ("logits" in task["body"]["layer"]) == (len(branch_hidden) > 1)


def test_partition_with_sentence_and_token_tasks(rng):
    config = dict(LTB, trunk="bag_of_embeddings", branch_hidden=(6, 5))
    model, params = build_from_config(config, TEXT, ["kind", "pos"], nnx.Rngs(0))
    check_partition(model, params, random_batch(rng, TEXT, batch_size=8))


def test_shapes_and_sampling(rng):
    names = task_names(TABLE)
    model, params = build_from_config(dict(LTB, branch_nodes=4), TABLE, names, nnx.Rngs(0))
    batch = random_batch(rng, TABLE, batch_size=5)

    @jax.jit  # one program, run once per key (eager passes would compile op by op)
    def passes(params, batch, key):
        z = model.encode(params["shared"], batch, None)
        evaluation = model.decode(params["tasks"], z, batch, None), model.apply(params, batch, None)
        return z, *evaluation, model.apply(params, batch, key)["kind"]

    z, outputs, again, first = passes(params, batch, jax.random.key(1))
    same, other = (passes(params, batch, jax.random.key(seed))[-1] for seed in (1, 2))
    assert z["pooled"].shape == (5, 4, 6)  # K_{L-1} = 4 nodes of width 6
    layers = params["shared"]["body"]["layers"]
    assert "logits" not in layers[0] and layers[1]["logits"].shape == (4, 4)
    assert params["tasks"][names[0]]["body"]["layer"]["logits"].shape == (1, 4)
    assert outputs["kind"].shape == (5, 3) and outputs["tags"].shape == (5, 4)
    # evaluation (no key) is deterministic; training samples a tree per key
    np.testing.assert_array_equal(outputs["kind"], again["kind"])
    np.testing.assert_array_equal(first, same)
    assert not np.allclose(first, other)


def test_parent_weights_are_the_gumbel_softmax(rng):
    logits = rng.standard_normal((3, 4))
    key = jax.random.key(7)
    with jax.enable_x64():
        weights = np.asarray(parent_weights(jnp.asarray(logits), 0.5, key))
        gumbel = np.asarray(jax.random.gumbel(key, logits.shape, jnp.float32), np.float64)
    scaled = (logits + gumbel) / 0.5
    expected = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    plain = np.asarray(parent_weights(jnp.asarray(logits, jnp.float32), 2.0, None))
    np.testing.assert_allclose(plain, np.exp(logits / 2) / np.exp(logits / 2).sum(axis=1, keepdims=True), rtol=1e-5)


def test_derived_tree_is_the_argmax_parent(rng):
    names = task_names(TABLE)
    _, params = build_from_config(dict(LTB, branch_nodes=3), TABLE, names, nnx.Rngs(0))
    params["shared"]["body"]["layers"][1]["logits"] = jnp.asarray(rng.standard_normal((3, 3)), jnp.float32)
    for name in names:
        params["tasks"][name]["body"]["layer"]["logits"] = jnp.asarray(rng.standard_normal((1, 3)), jnp.float32)
    tree = derived_tree(params)
    np.testing.assert_array_equal(tree["shared"][0], np.asarray(params["shared"]["body"]["layers"][1]["logits"]).argmax(1))
    for name in names:
        assert tree["tasks"][name] == int(np.asarray(params["tasks"][name]["body"]["layer"]["logits"]).argmax())


@pytest.mark.parametrize(
    "config,message",
    [
        ({"branch_hidden": ()}, "model.branch_hidden needs at least one width"),
        ({"branch_hidden": (8, 0)}, "model.branch_hidden: expected a tuple of positive ints"),
        ({"gumbel_temperature": 0.0}, "model.gumbel_temperature must be > 0"),
        ({"branch_nodes": -1}, "model.branch_nodes: expected a non-negative int"),
    ],
)
def test_bad_config_is_one_clear_error(config, message):
    with pytest.raises(ConfigError, match=message):
        build_from_config(dict(LTB, **config), TABLE, task_names(TABLE), nnx.Rngs(0))

"""Output conventions of every trunk × head and every architecture (mtl_jax.models.heads)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.factory import build_from_config
from tests.models.fixtures import ARCHITECTURES, LENGTH, SMALL, SPEC_OF_TRUNK, TEXT, random_batch, task_names


def expected_shape(task, batch_size: int) -> tuple[int, ...]:
    return {
        "classification": (batch_size, task.num_outputs),
        "multilabel": (batch_size, task.num_outputs),
        "regression": (batch_size,),
        "tagging": (batch_size, LENGTH, task.num_outputs),
    }[task.kind]


def check_outputs(outputs: dict, spec, batch_size: int) -> None:
    assert set(outputs) == set(task_names(spec))
    for task in spec.tasks:
        out = outputs[task.name]
        assert out.shape == expected_shape(task, batch_size), task.name
        assert out.dtype == np.float32
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("trunk", sorted(SPEC_OF_TRUNK))
def test_every_trunk_feeds_every_head(trunk, rng):
    spec = SPEC_OF_TRUNK[trunk]
    model, params = build_from_config(dict(SMALL, trunk=trunk), spec, task_names(spec), nnx.Rngs(0))
    batch = random_batch(rng, spec, batch_size=5)
    # evaluation (no key) and training (a key) as one compiled program
    both = jax.jit(lambda p, b, key: (model.apply(p, b), model.apply(p, b, key)))
    evaluation, train = both(params, batch, jax.random.key(1))
    check_outputs(evaluation, spec, 5)
    check_outputs(train, spec, 5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_serves_sentence_and_token_tasks(architecture, rng):
    config = dict(SMALL, trunk="bag_of_embeddings", architecture=architecture)
    model, params = build_from_config(config, TEXT, task_names(TEXT), nnx.Rngs(0))
    check_outputs(jax.jit(model.apply)(params, random_batch(rng, TEXT, batch_size=4)), TEXT, 4)


def test_representation_holds_only_the_leaves_the_tasks_read(rng):
    model, params = build_from_config(dict(SMALL, trunk="bilstm"), TEXT, ["kind"], nnx.Rngs(0))
    z = jax.eval_shape(model.encode, params["shared"], random_batch(rng, TEXT), None)  # traced, not run
    assert set(z) == {"pooled"}
    model, params = build_from_config(dict(SMALL, trunk="bilstm"), TEXT, ["pos"], nnx.Rngs(0))
    z = jax.eval_shape(model.encode, params["shared"], random_batch(rng, TEXT), None)
    assert set(z) == {"tokens"}

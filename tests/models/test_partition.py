"""Every architecture's shared / task-specific split is right, checked through gradients.

Rule (mtl_jax.models.multitask): a parameter is task-specific iff only that task's loss
depends on it. So a leaf of params["tasks"][k] gets gradient from task k and from no other
task, and a shared leaf gets gradient from at least two tasks. This also checks that every
parameter receives a nonzero gradient.
"""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from mtl_jax.models.factory import build_from_config
from tests.models.fixtures import ARCHITECTURES, SMALL, SPEC_OF_TRUNK, TABLE, TEXT, random_batch, task_names
from tests.models.gradients import per_task_gradients, tasks_reaching


def check_partition(model, params, batch) -> None:
    jac = per_task_gradients(model, params, batch, jax.random.key(0))
    names = list(model.task_names)
    for path, leaf in jax.tree_util.tree_leaves_with_path(jac["shared"]):
        reached = tasks_reaching(leaf)
        assert len(reached) >= 2, f"shared {jax.tree_util.keystr(path)} reached only by {reached}"
    for index, name in enumerate(names):
        for path, leaf in jax.tree_util.tree_leaves_with_path(jac["tasks"][name]):
            where = f"tasks[{name}]{jax.tree_util.keystr(path)}"
            assert tasks_reaching(leaf) == {index}, f"{where} reached by {tasks_reaching(leaf)}"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_partition_of_every_architecture(architecture, rng):
    config = dict(SMALL, architecture=architecture, levels=3, tower=(6,))
    model, params = build_from_config(config, TABLE, task_names(TABLE), nnx.Rngs(0))
    check_partition(model, params, random_batch(rng, TABLE, batch_size=8))


@pytest.mark.parametrize("architecture", ["mmoe", "ple", "cross_stitch", "mtan"])
def test_partition_with_sentence_and_token_tasks(architecture, rng):
    config = dict(SMALL, trunk="bag_of_embeddings", architecture=architecture)
    model, params = build_from_config(config, TEXT, ["kind", "pos"], nnx.Rngs(0))
    check_partition(model, params, random_batch(rng, TEXT, batch_size=8))


@pytest.mark.parametrize("trunk", sorted(SPEC_OF_TRUNK))
def test_every_parameter_of_every_trunk_gets_gradient(trunk, rng):
    spec = SPEC_OF_TRUNK[trunk]
    config = dict(SMALL, trunk=trunk, readout="set2set" if trunk == "mpnn" else "sum", positions="learned")
    model, params = build_from_config(config, spec, task_names(spec), nnx.Rngs(0))
    check_partition(model, params, random_batch(rng, spec, batch_size=8))

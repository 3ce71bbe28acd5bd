"""build_from_config rejects bad model configs with one clear ConfigError."""

from __future__ import annotations

import pytest
from flax import nnx

from mtl_jax.errors import ConfigError
from mtl_jax.models.factory import build_from_config
from tests.models.fixtures import GRAPHS, SMALL, TABLE, TEXT, task_names


@pytest.mark.parametrize(
    "config, spec, tasks, message",
    [
        ({"trunk": "lstm"}, TEXT, ["kind"], "model.trunk: unknown value 'lstm'; accepted values: "),
        ({"architecture": "moe"}, TABLE, ["kind"], "accepted values: hard, mmoe"),
        ({"hiden": 8}, TABLE, ["kind"], "model.hiden: unknown key. Did you mean 'hidden'?"),
        ({"trunk": "bilstm"}, TABLE, ["kind"], "accepted trunks for features: mlp"),
        ({"trunk": "mlp"}, GRAPHS, ["kind"], "accepted trunks for graph: mpnn"),
        ({"dtype": "float16"}, TABLE, ["kind"], "accepted values: float32, bfloat16"),
        ({"dropout": 1.5}, TABLE, ["kind"], "model.dropout: expected a rate in [0, 1)"),
        ({"expert_hidden": 8}, TABLE, ["kind"], "model.expert_hidden: expected a tuple"),
        ({"architecture": "dselect_k", "top_k": 9}, TABLE, ["kind"], "model.top_k=9"),
        ({}, TABLE, ["nope"], "task 'nope': dataset 'table' has no such task; accepted: kind, tags, score"),
        ({"trunk": "transformer", "hidden": 9, "num_heads": 2}, TEXT, ["kind"], "must divide by model.num_heads"),
    ],
)
def test_bad_config_names_the_key_and_the_accepted_values(config, spec, tasks, message):
    with pytest.raises(ConfigError) as error:
        build_from_config(dict(config), spec, tasks, nnx.Rngs(0))
    assert message in str(error.value)


def test_defaults_build_a_model_for_every_task():
    model, params = build_from_config({}, TABLE, task_names(TABLE), nnx.Rngs(0))
    assert model.task_names == tuple(task_names(TABLE))
    assert set(params) == {"shared", "tasks"} and set(params["tasks"]) == set(task_names(TABLE))


def test_list_values_are_accepted_for_tuples():
    model, _ = build_from_config(dict(SMALL, expert_hidden=[8], architecture="mmoe"), TABLE, ["kind"], nnx.Rngs(0))
    assert model.task_names == ("kind",)

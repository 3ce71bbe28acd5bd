"""The search-space declaration: round trip, differences, assignment, grid, default space."""

from __future__ import annotations

import pytest

from mtl_jax.errors import ConfigError
from mtl_jax.tuning import space as S
from mtl_jax.tuning.default_space import ARCHITECTURES, METHODS, default_space
from mtl_jax.tuning.runs import checked_space, resolved_config
from mtl_jax.tuning.suggest import param_name, values_of

SPACE = {
    "optimizer.learning_rate": S.Float(1e-4, 1e-2, log=True),
    "batch_size": S.Choice([32, 64]),
    "aggregator": S.Choice(["sum", "cagrad"], when={"cagrad": {"aggregator_options.c": S.Float(0.1, 0.9)}}),
    "model.architecture": S.Choice(["hard", "mmoe"], when={"mmoe": {"model.num_experts": S.Int(2, 8, step=2)}}),
}


def test_description_round_trips_and_names_each_difference() -> None:
    described = S.describe(SPACE)
    assert S.from_description(described) == SPACE
    changed = dict(SPACE, batch_size=S.Choice([32, 64, 128]))
    changed["aggregator"] = S.Choice(["sum", "cagrad"], when={"cagrad": {"aggregator_options.c": S.Float(0.2, 0.9)}})
    assert S.space_differences(described, S.describe(changed)) == [
        'aggregator="cagrad" -> aggregator_options.c: Float(0.1, 0.9) -> Float(0.2, 0.9)',
        "batch_size: Choice([32, 64]) -> Choice([32, 64, 128])",
    ]
    assert S.space_differences(described, S.describe(SPACE)) == []


def test_apply_sets_dotted_keys_and_drops_the_base_methods_options() -> None:
    base = {"aggregator": "cagrad", "aggregator_options": {"c": 0.4}, "model": {"num_experts": 4, "dropout": 0.0},
            "optimizer": {"learning_rate": 1e-3}}
    out = S.apply(base, {"aggregator": "sum", "model.dropout": 1, "optimizer.learning_rate": 3e-3})
    assert out["aggregator_options"] == {} and out["model"]["dropout"] == 1.0 and isinstance(out["model"]["dropout"], float)
    assert base["aggregator_options"] == {"c": 0.4}  # a copy
    kept = S.apply(base, {"aggregator": "cagrad", "aggregator_options.c": 0.7})
    assert kept["aggregator_options"] == {"c": 0.7}


def test_conditional_parameters_are_named_by_their_branch() -> None:
    params = {"optimizer.learning_rate": 1e-3, "batch_size": 64, "aggregator": "cagrad",
              param_name("aggregator_options.c", (("aggregator", "cagrad"),)): 0.3, "model.architecture": "hard"}
    assert "aggregator_options.c | aggregator=cagrad" in params
    assert values_of(params, SPACE) == {"optimizer.learning_rate": 1e-3, "batch_size": 64, "aggregator": "cagrad",
                                        "aggregator_options.c": 0.3, "model.architecture": "hard"}


def test_grid_needs_a_flat_discrete_space() -> None:
    flat = {"batch_size": S.Choice([32, 64]), "model.num_layers": S.Int(1, 5, step=2), "model.dropout": S.Float(0.0, 0.2, step=0.1)}
    assert S.grid(flat) == {"batch_size": [32, 64], "model.num_layers": [1, 3, 5], "model.dropout": [0.0, 0.1, 0.2]}
    assert S.grid_size(flat) == 18
    with pytest.raises(ConfigError, match="sub-spaces"):
        S.grid({"batch_size": SPACE["batch_size"], "aggregator": SPACE["aggregator"]})
    with pytest.raises(ConfigError, match="continuous Float"):
        S.grid({"optimizer.learning_rate": S.Float(1e-4, 1e-2, log=True)})


def test_the_default_space_covers_the_documented_keys_and_passes_its_checks() -> None:
    config = resolved_config("experiments/dante_pos_emotions_pcgrad.py")
    space = default_space(config, num_devices=1)
    assert set(space) == {"optimizer.learning_rate", "optimizer.weight_decay", "model.dropout", "model.word_dropout",
                          "batch_size", "aggregator", "mode", "model.architecture", "model.hidden", "model.num_layers"}
    lr = config["optimizer"]["learning_rate"]
    assert space["optimizer.learning_rate"] == S.Float(lr / 10, lr * 10, log=True)
    assert space["batch_size"].values == (32, 64, 128)
    assert set(METHODS) <= set(space["aggregator"].values) and space["model.architecture"].values == ARCHITECTURES
    assert checked_space(None, config, num_devices=1) == space
    mnist = resolved_config("experiments/multi_mnist_pcgrad.py")  # adam: no weight decay; no text: no word dropout
    assert not {"optimizer.weight_decay", "model.word_dropout"} & set(default_space(mnist, num_devices=1))

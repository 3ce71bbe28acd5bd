"""The typed run config: the JSON shape and hash of today's config.json, defaults in one
place, and one-line errors for values out of range."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest

from mtl_jax.cli.main import default_workdir
from mtl_jax.config import ModelConfig, RunConfig, load_config, parse, resolve
from mtl_jax.config.run_config import hashed_form
from mtl_jax.errors import ConfigError
from mtl_jax.models.factory import DEFAULTS as FACTORY_DEFAULTS
from tests.training.small_run import CONFIG, overrides

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.py"))
# config.json of every experiment as the dict-based config of the previous version resolved it
SAVED_BY_PREVIOUS_VERSION = json.loads((Path(__file__).parent / "data" / "resolved_v1.json").read_text())


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_resolved_config_keeps_the_json_shape_and_run_directory_of_the_previous_version(path):
    saved = SAVED_BY_PREVIOUS_VERSION[path.stem]
    config = RunConfig.from_dict(resolve(load_config(path)), num_devices=1).to_dict()
    assert hashed_form(config) == saved["config"]
    assert hashlib.sha1(json.dumps(hashed_form(config), sort_keys=True).encode()).hexdigest()[:8] == saved["digest"]
    assert RunConfig.from_dict(saved["config"], num_devices=1).to_dict() == config  # the old file reads back
    assert default_workdir(str(path), config) == str(Path("runs") / f"{path.stem}-{saved['digest']}")
    assert RunConfig.from_dict(config, num_devices=1).to_dict() == config  # a saved config reads back


def test_model_defaults_are_the_factory_defaults():
    assert ModelConfig().to_dict() == json.loads(json.dumps(FACTORY_DEFAULTS))


def test_config_is_frozen_and_typed():
    config = parse(load_config(CONFIG), overrides(), num_devices=1)
    assert isinstance(config.model, ModelConfig) and config.model.hidden == 16
    assert config.checkpoint.every == 4 and config.optimizer.name == "adam"
    assert config.tasks == ("left", "right") and config.dataset_names == ("multi_mnist",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3  # type: ignore[misc]


def one_line_error(config_overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(load_config(CONFIG), overrides() + config_overrides, num_devices=1)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("rate", [0.0, -1e-3, math.inf, -math.inf, math.nan, 0])
def test_non_finite_zero_or_negative_learning_rate_is_refused(rate):
    config = parse(load_config(CONFIG), overrides(), num_devices=1).to_dict()
    with pytest.raises(ConfigError, match="'optimizer.learning_rate' must be a positive number"):
        RunConfig.from_dict({**config, "optimizer": {"name": "adam", "learning_rate": rate}}, num_devices=1)
    assert "'optimizer.learning_rate' must be a positive number, got inf" in one_line_error(["optimizer.learning_rate=1e999"])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("steps=10_000_000_000", "'steps' is 10000000000, larger than the largest accepted value 2147483647"),
        ("batch_size=0", "'batch_size' must be a positive integer"),
        ("eval_batch_size=1_000_000_000", "'eval_batch_size' is 1000000000, larger than the largest accepted value 65536"),
        ("checkpoint.every=-4", "'checkpoint.every' must be a positive integer"),
        ("seed=-1", "'seed' must be a non-negative integer"),
        ("model.hidden=0", "model.hidden: expected a positive int up to 65536"),
        ("model.widths=[16, 0]", "model.widths: expected a tuple of positive ints"),
        ("model.dropout=1.5", r"model.dropout: expected a rate in [0, 1)"),
        ("model.cutoff=float('inf')", "expected a value of type float"),
        ("dataset_options.num_train=-5", "'dataset_options.num_train' is -5; expected an integer in [1, 2147483647]"),
        ("mixing.temperature=-1.0", "'mixing.temperature' must be a positive number"),
        ("optimizer={'name': 'adam', 'learning_rate': 0.1, 'b1': 'x'}", "'optimizer.b1' must be a finite number"),
        ("batch_size=True", "--set batch_size: expected a value of type int (like 32), got True"),
        ("gradient_stats=0", "--set gradient_stats: expected True or False (like True), got 0"),
    ],
)
def test_out_of_range_values_are_one_line(override, expected):
    assert expected in one_line_error([override])

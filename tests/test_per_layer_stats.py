"""``gradient_stats: "per_layer"``: the step logs a Gramian per top-level module of the shared
trunk, the modules' Gramians add up to the whole one, and the trainer writes them to
metrics.jsonl under the names ``mtl-jax report`` draws."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from mtl_jax.cli.main import main
from tests.helpers import random_batch, run_steps, small_model
from tests.training.small_run import train_args


def test_per_layer_statistics_sum_to_the_whole_trunk(rng):
    model, params = small_model(3)
    batch = random_batch(rng, 16, 3)
    _, (whole,) = run_steps(model, params, [batch], "pcgrad", "full", gradient_stats=True)
    _, (layered,) = run_steps(model, params, [batch], "pcgrad", "full", gradient_stats="per_layer")
    norms = {module: np.asarray(stats["grad_norm"]) for module, stats in layered["layer_stats"].items()}
    assert len(norms) == 2  # the two dense layers of the trunk
    np.testing.assert_allclose(sum(n**2 for n in norms.values()), np.asarray(whole["grad_norm"]) ** 2, rtol=1e-5)
    np.testing.assert_allclose(layered["grad_cosine"], whole["grad_cosine"], rtol=1e-5, atol=1e-6)


def test_per_layer_needs_full_mode():
    model, params = small_model(2)
    with pytest.raises(ValueError, match="needs mode 'full'"):
        run_steps(model, params, [], "pcgrad", "representation", gradient_stats="per_layer")


def test_the_trainer_logs_per_layer_statistics(tmp_path):
    run = tmp_path / "run"
    assert main(train_args(run, "--set", "gradient_stats='per_layer'")) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert train and all(any(k.startswith("layer_conflict_fraction/") for k in r) for r in train)
    assert any(k.startswith("layer_grad_cosine/") for k in train[-1])

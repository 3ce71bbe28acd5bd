"""Every architecture trains with the real train step, in full and representation mode."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax.models.factory import build_from_config
from tests.helpers import run_steps
from tests.models.fixtures import ARCHITECTURES, SMALL, TABLE, TEXT, random_batch, task_names

STEPS = 12


def assert_every_loss_drops(metrics: list[dict]) -> None:
    first, last = np.asarray(metrics[0]["loss"]), np.asarray(metrics[-1]["loss"])
    assert np.all(np.isfinite(last))
    assert np.all(last < first), f"losses went {first} -> {last}"


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("mode, aggregator", [("full", "pcgrad"), ("representation", "mgda")])
def test_architecture_lowers_every_task_loss(architecture, mode, aggregator, rng):
    model, params = build_from_config(dict(SMALL, architecture=architecture), TABLE, task_names(TABLE), nnx.Rngs(0))
    batch = random_batch(rng, TABLE, batch_size=16)
    _, metrics = run_steps(model, params, [batch] * STEPS, aggregator, mode, optimizer=optax.adam(1e-2))
    assert_every_loss_drops(metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    "trunk, architecture, mode", [("bilstm", "mmoe", "representation"), ("transformer", "hard", "full")]
)
def test_text_model_with_token_and_sentence_tasks_trains(trunk, architecture, mode, rng):
    config = dict(SMALL, trunk=trunk, architecture=architecture, dropout=0.1, word_dropout=0.1, label_smoothing=0.1)
    model, params = build_from_config(config, TEXT, task_names(TEXT), nnx.Rngs(0))
    batch = random_batch(rng, TEXT, batch_size=16)
    _, metrics = run_steps(model, params, [batch] * STEPS, "pcgrad", mode, optimizer=optax.adam(1e-2))
    assert_every_loss_drops(metrics)

"""Every architecture and every trunk trains a few steps on a small *real* batch (slices of
the packaged datasets) and lowers every task's loss."""

from __future__ import annotations

import optax
import pytest
from flax import nnx

from mtl_jax.data.datasets import open_dataset
from mtl_jax.models.factory import build_from_config
from tests.helpers import run_steps
from tests.models.fixtures import ARCHITECTURES
from tests.models.test_training import assert_every_loss_drops

STEPS = 15
SLICES = {
    "dante_tweets": {"limit": 120},
    "turkish_ud": {"limit": 80},
    "multi_mnist": {"num_train": 64, "num_test": 16},
    "qm9": {"limit": 80, "num_test": 10, "num_validation": 10},
    "yeast": {"limit": 100},
}
TEXT_TASKS = ["upos", "joy", "trust"]  # a token-level task and two sentence-level ones


def real_batch(name: str, size: int = 16) -> tuple:
    """The first training batch of a slice; 16 examples keep the text batches in short length
    buckets (a 32-sentence Turkish batch pads to 128 tokens and runs 2x longer, no better)."""
    opened = open_dataset(name, **SLICES[name])
    return opened.spec, next(opened.train_batches("train", batch_size=size, seed=0, process_index=0, process_count=1))


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_architecture_lowers_every_loss_on_real_tweets(architecture):
    spec, batch = real_batch("dante_tweets")
    config = {"trunk": "bag_of_embeddings", "embed_dim": 32, "hidden": 32, "architecture": architecture,
              "num_experts": 3, "expert_hidden": (32,), "num_shared_experts": 2, "num_task_experts": 1}  # fmt: skip
    model, params = build_from_config(config, spec, TEXT_TASKS, nnx.Rngs(0))
    _, metrics = run_steps(model, params, [batch] * STEPS, "pcgrad", "full", optimizer=optax.adam(1e-2))
    assert_every_loss_drops(metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset, config, mode",
    [
        ("dante_tweets", {"trunk": "bigru", "embed_dim": 32, "hidden": 32}, "representation"),
        ("turkish_ud", {"trunk": "transformer", "hidden": 32, "num_layers": 1, "num_heads": 2}, "full"),
        ("multi_mnist", {"trunk": "lenet"}, "full"),
        ("multi_mnist", {"trunk": "resnet", "widths": (8, 16), "groups": 4}, "representation"),
        ("qm9", {"trunk": "mpnn", "hidden": 32, "num_layers": 2, "num_rbf": 16}, "full"),
        ("yeast", {"trunk": "mlp", "hidden": 64, "num_layers": 2}, "full"),
    ],
    ids=["bigru-tweets", "transformer-turkish", "lenet-mnist", "resnet-mnist", "mpnn-qm9", "mlp-yeast"],
)
def test_trunk_lowers_every_loss_on_real_data(dataset, config, mode):
    spec, batch = real_batch(dataset)
    names = [t.name for t in spec.tasks][:4] if dataset != "dante_tweets" else TEXT_TASKS
    model, params = build_from_config(config, spec, names, nnx.Rngs(0))
    _, metrics = run_steps(model, params, [batch] * STEPS, "upgrad", mode, optimizer=optax.adam(3e-3))
    assert_every_loss_drops(metrics)

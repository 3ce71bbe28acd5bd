"""Loader throughput: examples/s of ``train_batches`` per dataset, and its ratio to the train
step's consumption on the same experiment (target ≥ 10×). One JSON line per dataset.

Data: ``dante_tweets``, ``turkish_ud``, ``yeast`` and ``multi_mnist`` (10,000 train pairs)
are prepared in full; ``multi_fashion`` as a slice of 10,000 train pairs and ``qm9`` as the
first 12,000 molecules (the loader's cost per example does not depend on the split's size).

Loading: ``OpenDataset.train_batches`` decodes and collates the train split once
(``precollate_s``, :mod:`mtl_jax.data.columns`); a batch is then one indexing per array.

Train step (``mtl_jax.training.step``, PCGrad, full mode, gradient statistics off):

* ``multi_mnist`` / ``multi_fashion``: MLP trunk 784→512→512→512 (``models/mlp.py``), two
  10-class heads, global batch 256;
* ``dante_tweets``: an inline embedding (128) + masked mean-pooling + dense (128) trunk and
  the 8 emotion heads (sentence-level tasks only: the repository has no tagging head yet),
  global batch 64;
* ``turkish_ud``, ``qm9``, ``yeast``: loader only (no trunk for their tasks yet); the
  ``step_examples_per_s`` field is null.

    python benchmarks/loader.py [--data-dir DIR] [--out benchmarks/results/loader_cpu.jsonl]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.data.datasets import open_dataset
from mtl_jax.models import MLPTrunk, build_model, classification_task
from mtl_jax.training import create_train_state, data_mesh, make_train_step, replicate, shard_batch

CASES: dict[str, dict[str, Any]] = {
    "multi_mnist": {"options": {}, "batch": 256, "data": "full (10,000 train pairs)"},
    "multi_fashion": {"options": {"num_train": 10_000, "num_test": 2_000}, "batch": 256, "data": "slice: 10,000 train pairs"},
    "dante_tweets": {"options": {}, "batch": 64, "data": "full"},
    "turkish_ud": {"options": {}, "batch": 64, "data": "full"},
    "qm9": {"options": {"limit": 12_000, "num_test": 1_000, "num_validation": 1_000}, "batch": 256, "data": "slice: first 12,000 molecules"},
    "yeast": {"options": {}, "batch": 256, "data": "full"},
}


class EmbedPoolTrunk(nnx.Module):
    """Token embeddings, mean over ``tokens_mask``, one dense ReLU layer."""

    def __init__(self, vocab_size: int, width: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab_size, width, rngs=rngs)
        self.dense = nnx.Linear(width, width, rngs=rngs)
        self.features = width

    def __call__(self, batch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        mask = batch["tokens_mask"].astype(jnp.float32)[..., None]
        pooled = (self.embed(batch["tokens"]) * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
        return nnx.relu(self.dense(pooled))


def loader_rate(opened, batch_size: int, batches: int) -> float:
    """Examples/s of ``train_batches`` after two warm-up batches."""
    iterator = opened.train_batches(batch_size, 0, process_index=0, process_count=1)
    for _ in range(2):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def model_for(name: str, opened):
    rngs = nnx.Rngs(0)
    if name in ("multi_mnist", "multi_fashion"):
        trunk = MLPTrunk(784, (512, 512, 512), input_key="image", rngs=rngs)
        return build_model(trunk, 512, [classification_task(t, 10) for t in ("left", "right")], rngs)
    if name == "dante_tweets":
        trunk = EmbedPoolTrunk(opened.spec.input.vocab_size, 128, rngs=rngs)
        tasks = [classification_task(t.name, 2) for t in opened.spec.tasks if t.kind == "classification"]
        return build_model(trunk, 128, tasks, rngs)
    return None


def step_rate(name: str, opened, batch_size: int, steps: int) -> float | None:
    """Examples/s of the compiled PCGrad step on batches of the loader (placed beforehand)."""
    built = model_for(name, opened)
    if built is None:
        return None
    model, params = built
    keys = {t.name for t in model.tasks} | {f"{t.name}_mask" for t in model.tasks}
    keep = lambda b: {k: v for k, v in b.items() if k in keys or k in ("image", "tokens", "tokens_mask")}  # noqa: E731
    mesh, optimizer, aggregator = data_mesh(), optax.sgd(0.01), get_aggregator("pcgrad")
    state = replicate(create_train_state(params, optimizer, aggregator, len(model.tasks), 0), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, gradient_stats=False)
    iterator = opened.train_batches(batch_size, 0, process_index=0, process_count=1)
    batches = [shard_batch(keep(next(iterator)), mesh) for _ in range(steps)]
    for batch in batches:  # warm-up pass: compiles every bucket shape once
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for batch in batches:
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="prepared data (default: a temporary directory)")
    parser.add_argument("--datasets", nargs="*", default=list(CASES))
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--out", default="benchmarks/results/loader_cpu.jsonl")
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="mtl_jax_loader_")
    device = jax.devices()[0]
    with open(args.out, "a", encoding="utf-8") as out:
        for name in args.datasets:
            case = CASES[name]
            opened = open_dataset(name, data_dir, **case["options"])
            started = time.perf_counter()
            opened.columns("train")  # decode + collate the split once (OpenDataset's column store)
            precollate = time.perf_counter() - started
            loader = loader_rate(opened, case["batch"], args.batches)
            step = step_rate(name, opened, case["batch"], args.batches)
            record = {
                "benchmark": "loader", "dataset": name, "data": case["data"], "batch": case["batch"],
                "train_examples": len(opened.splits["train"]), "precollate_s": round(precollate, 2),
                "loader_examples_per_s": round(loader, 1),
                "step_examples_per_s": None if step is None else round(step, 1),
                "ratio_loader_to_step": None if step is None else round(loader / step, 2),
                "step": None if step is None else "pcgrad full, gradient_stats off",
                "device_kind": device.device_kind, "platform": device.platform, "devices": jax.device_count(),
                "host": platform.node(), "jax": jax.__version__,
            }  # fmt: skip
            print(json.dumps(record), flush=True)
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

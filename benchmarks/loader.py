"""Loader throughput: examples/s of ``train_batches`` per dataset, and its ratio to the train
step's consumption on the same experiment (target ≥ 10×). One JSON line per dataset.

Data: ``dante_tweets``, ``turkish_ud``, ``yeast`` and ``multi_mnist`` (10,000 train pairs)
are prepared in full; ``multi_fashion`` as a slice of 10,000 train pairs and ``qm9`` as the
first 12,000 molecules (the loader's cost per example does not depend on the split's size).

Loading: ``OpenDataset.train_batches`` decodes and collates the train split once
(``precollate_s``, :mod:`mtl_jax.data.columns`); a batch is then one indexing per array.

Train step (``mtl_jax.surgery.step``, PCGrad, full mode, gradient statistics off) on every
task of the dataset, with the model of the dataset's experiment config (``MODELS``, built by
``mtl_jax.models.factory``): MLP 784→512×3 (MultiMNIST), LeNet (MultiFashion), BiGRU
(DANTEStocks), BiLSTM (Turkish UD), the message-passing network (QM9), MLP + MMoE (Yeast).

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
import optax
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.data.datasets import open_dataset
from mtl_jax.models.factory import build_from_config
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate, shard_batch

MODELS: dict[str, dict[str, Any]] = {  # the trunks of the experiments/ configs
    "multi_mnist": {"trunk": "mlp", "hidden": 512, "num_layers": 3},
    "multi_fashion": {"trunk": "lenet"},
    "dante_tweets": {"trunk": "bigru", "embed_dim": 64, "hidden": 64},
    "turkish_ud": {"trunk": "bilstm", "embed_dim": 128, "hidden": 128},
    "qm9": {"trunk": "mpnn", "hidden": 128, "num_layers": 3},
    "yeast": {"trunk": "mlp", "hidden": 128, "num_layers": 2, "architecture": "mmoe", "num_experts": 4},
}
CASES: dict[str, dict[str, Any]] = {
    "multi_mnist": {"options": {}, "batch": 256, "data": "full (10,000 train pairs)"},
    "multi_fashion": {"options": {"num_train": 10_000, "num_test": 2_000}, "batch": 256, "data": "slice: 10,000 train pairs"},
    "dante_tweets": {"options": {}, "batch": 64, "data": "full"},
    "turkish_ud": {"options": {}, "batch": 64, "data": "full"},
    "qm9": {"options": {"limit": 12_000, "num_test": 1_000, "num_validation": 1_000}, "batch": 256, "data": "slice: first 12,000 molecules"},
    "yeast": {"options": {}, "batch": 256, "data": "full"},
}


def loader_rate(opened, batch_size: int, batches: int) -> float:
    """Examples/s of ``train_batches`` after two warm-up batches."""
    iterator = opened.train_batches("train", batch_size=batch_size, seed=0, process_index=0, process_count=1)
    for _ in range(2):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def model_for(name: str, opened):
    """The model of the dataset's experiment config (``experiments/``), built by the factory."""
    config = MODELS[name]
    tasks = [task.name for task in opened.spec.tasks]
    return build_from_config(config, opened.spec, tasks, nnx.Rngs(0))


def step_rate(name: str, opened, batch_size: int, steps: int) -> float:
    """Examples/s of the compiled PCGrad step on batches of the loader (placed beforehand)."""
    model, params = model_for(name, opened)
    mesh, optimizer, aggregator = data_mesh(), optax.sgd(0.01), get_aggregator("pcgrad")
    state = replicate(create_train_state(params, optimizer, aggregator, len(model.tasks), 0), mesh)
    step = make_train_step(model, aggregator, optimizer, mesh, gradient_stats=False)
    iterator = opened.train_batches("train", batch_size=batch_size, seed=0, process_index=0, process_count=1)
    batches = [shard_batch(next(iterator), mesh) for _ in range(steps)]
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
                "step_examples_per_s": round(step, 1), "ratio_loader_to_step": round(loader / step, 2),
                "step": "pcgrad full, gradient_stats off", "model": MODELS[name],
                "device_kind": device.device_kind, "platform": device.platform, "devices": jax.device_count(),
                "host": platform.node(), "jax": jax.__version__,
            }  # fmt: skip
            print(json.dumps(record), flush=True)
            out.write(json.dumps(record) + "\n")
            out.flush()


if __name__ == "__main__":
    main()

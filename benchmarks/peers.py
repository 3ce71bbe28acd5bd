"""Step time of mtl_jax against its PyTorch peers on the same model, batch and T (JSON lines).

Peers (optional extra ``peers``: torch CPU wheel and torchjd; without them only the mtl_jax
rows are written):
- ``torchjd_autojac``: torchjd 0.18 ``mtl_backward(losses, features)`` then
  ``jac_to_grad(shared params, PCGrad())`` — the per-task Jacobian of the trunk;
- ``torchjd_autogram``: ``Engine(trunk)`` → Gramian of the T losses →
  ``PCGradWeighting`` → ``losses.backward(w)``;
- ``libmtl_loop``: a LibMTL-style loop — T ``autograd.grad`` calls, PCGrad (Yu et al. 2020,
  Alg. 1) on the flattened rows, the projected sum written into ``.grad``;
- mtl_jax: ``ew`` (one backward of the summed loss), ``pcgrad_materialised`` (full mode, J
  formed), ``pcgrad_engine`` (full mode, the Gramian engine), ``pcgrad_representation``.

Models: the reference MLP (784→512×3, ReLU, T linear heads of 10 classes, batch 256, Adam
1e-4) and the default experiment's text model (experiments/dante_pos_emotions_pcgrad.py:
embeddings 64, one bidirectional GRU layer of 64 units, a tagging head of 17 tags on the
tokens and T−1 two-class heads on the masked mean; batch 64, length 32, vocabulary 5000,
no dropout, every position real).

Cases are timed in interleaved rounds (each case ``--steps-per-round`` steps per round) so
that machine load hits all alike; ratios are between medians of the same run.

    python benchmarks/peers.py [--models mlp bigru] [--tasks 2 4 8] [--rounds 10]
        [--out benchmarks/results/peers_cpu.jsonl] [--tiny]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import time
from typing import Callable

import jax
import numpy as np
import optax
from flax import nnx

from mtl_jax.aggregators import get_aggregator
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec
from mtl_jax.models import MLPTrunk, build_model, classification_task
from mtl_jax.models.factory import build_from_config
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate, shard_batch

SIZES = {
    "mlp": dict(batch=256, input=784, hidden=(512, 512, 512), classes=10),
    "bigru": dict(batch=64, length=32, vocab=5000, embed=64, hidden=64, tags=17),
}
TINY = {
    "mlp": dict(batch=16, input=20, hidden=(16, 16), classes=3),
    "bigru": dict(batch=8, length=6, vocab=50, embed=8, hidden=8, tags=5),
}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- data


def host_batch(model: str, sizes: dict, num_tasks: int, rng: np.random.Generator) -> dict:
    """One batch as NumPy arrays, shared by every library."""
    if model == "mlp":
        batch = {"image": rng.random((sizes["batch"], sizes["input"]), dtype=np.float32)}
        for t in range(num_tasks):
            batch[f"task{t}"] = rng.integers(0, sizes["classes"], sizes["batch"]).astype(np.int32)
        return batch
    shape = (sizes["batch"], sizes["length"])
    batch = {
        "tokens": rng.integers(1, sizes["vocab"], shape).astype(np.int32),
        "tokens_mask": np.ones(shape, bool),
        "upos": rng.integers(0, sizes["tags"], shape).astype(np.int32),
        "upos_mask": np.ones(shape, bool),
    }
    for t in range(num_tasks - 1):
        batch[f"emotion{t}"] = rng.integers(0, 2, sizes["batch"]).astype(np.int32)
    return batch


def text_spec(sizes: dict, num_tasks: int) -> DatasetSpec:
    tasks = (TaskSpec("upos", "tagging", sizes["tags"]),) + tuple(
        TaskSpec(f"emotion{t}", "classification", 2) for t in range(num_tasks - 1)
    )
    return DatasetSpec("peers_text", InputSpec("text", "tokens", (), sizes["vocab"]), tasks)


# ----------------------------------------------------------------------------- mtl_jax

MTL_JAX_CASES = {
    "ew": ("sum", "full", True),
    "pcgrad_materialised": ("pcgrad", "full", False),
    "pcgrad_engine": ("pcgrad", "full", True),
    "pcgrad_representation": ("pcgrad", "representation", True),
}


def mtl_jax_step(model_name: str, sizes: dict, num_tasks: int, batch: dict, case: str) -> Callable[[], None]:
    method, mode, engine = MTL_JAX_CASES[case]
    rngs = nnx.Rngs(0)
    if model_name == "mlp":
        tasks = [classification_task(f"task{t}", sizes["classes"]) for t in range(num_tasks)]
        trunk = MLPTrunk(sizes["input"], sizes["hidden"], input_key="image", rngs=rngs)
        model, params = build_model(trunk, sizes["hidden"][-1], tasks, rngs)
    else:
        spec = text_spec(sizes, num_tasks)
        config = {"trunk": "bigru", "embed_dim": sizes["embed"], "hidden": sizes["hidden"], "dropout": 0.0}
        model, params = build_from_config(config, spec, [t.name for t in spec.tasks], rngs)
    mesh = data_mesh()
    aggregator, optimizer = get_aggregator(method), optax.adam(1e-4)
    holder = {"state": replicate(create_train_state(params, optimizer, aggregator, num_tasks, 0), mesh)}
    step = make_train_step(model, aggregator, optimizer, mesh, mode=mode, gradient_stats=False, gramian_engine=engine)
    placed = shard_batch(batch, mesh)

    def run() -> None:
        holder["state"], metrics = step(holder["state"], placed)
        jax.block_until_ready(metrics)

    return run


# ----------------------------------------------------------------------------- PyTorch


def torch_models(model_name: str, sizes: dict, num_tasks: int):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model_name == "mlp":
        dims = [sizes["input"], *sizes["hidden"]]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        trunk = nn.Sequential(*layers)
        heads = nn.ModuleList([nn.Linear(dims[-1], sizes["classes"]) for _ in range(num_tasks)])
        return trunk, heads

    class BiGRUTrunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(sizes["vocab"], sizes["embed"])
            self.gru = nn.GRU(sizes["embed"], sizes["hidden"], batch_first=True, bidirectional=True)

        def forward(self, tokens):
            tokens_out, _ = self.gru(self.embed(tokens))
            return tokens_out  # (B, L, 2H); the pooled mean is taken by the heads

    features = 2 * sizes["hidden"]
    heads = nn.ModuleList(
        [nn.Linear(features, sizes["tags"])] + [nn.Linear(features, 2) for _ in range(num_tasks - 1)]
    )
    return BiGRUTrunk(), heads


def torch_losses(model_name: str, heads, features, batch: dict, num_tasks: int):
    import torch.nn.functional as F

    if model_name == "mlp":
        return [F.cross_entropy(heads[t](features), batch[f"task{t}"]) for t in range(num_tasks)]
    tagging = heads[0](features)
    losses = [F.cross_entropy(tagging.reshape(-1, tagging.shape[-1]), batch["upos"].reshape(-1))]
    pooled = features.mean(1)
    losses += [F.cross_entropy(heads[t + 1](pooled), batch[f"emotion{t}"]) for t in range(num_tasks - 1)]
    return losses


def pcgrad_rows(rows, generator):
    """PCGrad (Yu et al. 2020, Alg. 1) on the (T, P) rows: the sum of the projected rows."""
    import torch

    projected = rows.clone()
    num_tasks = rows.shape[0]
    for i in range(num_tasks):
        for j in torch.randperm(num_tasks, generator=generator).tolist():
            if j == i:
                continue
            dot = projected[i] @ rows[j]
            if dot < 0:
                projected[i] -= dot / (rows[j] @ rows[j]) * rows[j]
    return projected.sum(0)


def torch_step(model_name: str, sizes: dict, num_tasks: int, batch_np: dict, peer: str) -> Callable[[], None]:
    import torch

    trunk, heads = torch_models(model_name, sizes, num_tasks)
    shared, task_params = list(trunk.parameters()), list(heads.parameters())
    optimizer = torch.optim.Adam(shared + task_params, lr=1e-4)
    batch = {k: torch.from_numpy(v.astype(np.int64) if v.dtype == np.int32 else v) for k, v in batch_np.items()}
    inputs = batch["image"] if model_name == "mlp" else batch["tokens"]
    generator = torch.Generator().manual_seed(0)

    if peer == "torchjd_autojac":
        from torchjd.aggregation import PCGrad
        from torchjd.autojac import jac_to_grad, mtl_backward

        aggregator = PCGrad()

        def run() -> None:
            optimizer.zero_grad()
            features = trunk(inputs)
            mtl_backward(torch_losses(model_name, heads, features, batch, num_tasks), features=features)
            jac_to_grad(shared, aggregator)
            optimizer.step()

    elif peer == "torchjd_autogram":
        from torchjd.aggregation import PCGradWeighting
        from torchjd.autogram import Engine

        engine, weighting = Engine(trunk, batch_dim=None), PCGradWeighting()

        def run() -> None:
            optimizer.zero_grad()
            losses = torch.stack(torch_losses(model_name, heads, trunk(inputs), batch, num_tasks))
            weights = weighting(engine.compute_gramian(losses))
            losses.backward(weights)
            optimizer.step()

    else:  # libmtl_loop

        def run() -> None:
            optimizer.zero_grad()
            losses = torch_losses(model_name, heads, trunk(inputs), batch, num_tasks)
            rows = []
            for loss in losses:
                grads = torch.autograd.grad(loss, shared, retain_graph=True)
                rows.append(torch.cat([g.reshape(-1) for g in grads]))
            head_grads = torch.autograd.grad(sum(losses), task_params)
            direction = pcgrad_rows(torch.stack(rows), generator)
            offset = 0
            for p in shared:
                p.grad = direction[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
            for p, g in zip(task_params, head_grads):
                p.grad = g
            optimizer.step()

    return run


TORCH_PEERS = ("torchjd_autojac", "torchjd_autogram", "libmtl_loop")


# ----------------------------------------------------------------------------- timing


def measure(model_name: str, sizes: dict, num_tasks: int, rounds: int, steps: int, with_torch: bool) -> list[dict]:
    batch = host_batch(model_name, sizes, num_tasks, np.random.default_rng(num_tasks))
    cases: dict[tuple[str, str], Callable[[], None]] = {}
    for case in MTL_JAX_CASES:
        cases[("mtl_jax", case)] = mtl_jax_step(model_name, sizes, num_tasks, batch, case)
    if with_torch:
        for peer in TORCH_PEERS:
            cases[("torch", peer)] = torch_step(model_name, sizes, num_tasks, batch, peer)
    for run in cases.values():  # compile / warm up
        run(), run()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
    for _ in range(rounds):
        for key, run in cases.items():
            started = time.perf_counter()
            for _ in range(steps):
                run()
            times[key].append((time.perf_counter() - started) / steps)
    medians = {key: statistics.median(v) for key, v in times.items()}
    ew = medians[("mtl_jax", "ew")]
    autojac = medians.get(("torch", "torchjd_autojac"))
    rows = []
    for (library, case), median in medians.items():
        rows.append({
            "benchmark": "peers",
            "model": model_name,
            "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
            "tasks": num_tasks,
            "library": library,
            "case": case,
            "median_step_ms": round(1e3 * median, 3),
            "ratio_to_mtl_jax_ew": round(median / ew, 4),
            "speedup_over_torchjd_autojac": round(autojac / median, 4) if autojac else None,
            "rounds": rounds,
            "steps_per_round": steps,
            **environment(),
        })
    return rows


def environment() -> dict:
    device = jax.devices()[0]
    fields = {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "host": platform.node(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "jax": jax.__version__,
        "torch": _version("torch"),
        "torchjd": _version("torchjd"),
    }
    try:
        import torch

        fields["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "bigru"], choices=sorted(SIZES))
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps-per-round", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--no-torch", action="store_true", help="only the mtl_jax rows")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    args = parser.parse_args()
    with_torch = not args.no_torch and _version("torch") is not None and _version("torchjd") is not None
    if not with_torch and not args.no_torch:
        print("torch/torchjd not installed (pip install 'mtl_jax[peers]'): mtl_jax rows only", flush=True)
    for model_name in args.models:
        sizes = (TINY if args.tiny else SIZES)[model_name]
        for num_tasks in args.tasks:
            for row in measure(model_name, sizes, num_tasks, args.rounds, args.steps_per_round, with_torch):
                line = json.dumps(row)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a", encoding="utf-8") as out:
                        out.write(line + "\n")


if __name__ == "__main__":
    main()

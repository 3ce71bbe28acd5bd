"""Multi-MNIST and Multi-Fashion with the LeNet of Sener & Koltun (2018): left/right accuracy.

Single-task (one LeNet per digit), EW (``sum``), PCGrad, MGDA, CAGrad, Nash-MTL and UPGrad
on the shared LeNet trunk, per seed; one JSON line per run in
``benchmarks/results/reproduce_multi_digit_cpu.jsonl`` (test accuracy per task, Δm% vs the
same seed's single-task runs, mean conflict rate of the logged steps, wall and CPU seconds).

Published figures to compare with (their budgets are far larger than ours):
- Yu et al. 2020 (PCGrad, NeurIPS), Multi-MNIST on full MNIST (60k pairs): PCGrad 96.58 /
  95.50 (left / right), joint training 90.30 / 90.01.
Our ``multi_mnist`` overlays 10,000 train pairs drawn from MNIST (the config's
``num_train``), ``multi_fashion`` 60,000 pairs of Fashion-MNIST (Debian
``dataset-fashion-mnist``), 10 % of train held out for validation.

    python benchmarks/reproduce_multi_digit.py --datasets multi_mnist multi_fashion --seeds 0 1 2 \
        --steps 3000 --batch-size 256                        # the full budget of the configs
    python benchmarks/reproduce_multi_digit.py --summary     # the table from the results file
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from reproduce_common import fmt_interval, read_rows, recorder, train_once

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"multi_mnist": "experiments/multi_mnist_pcgrad.py", "multi_fashion": "experiments/multi_fashion_lenet_cagrad.py"}
METHODS = ("sum", "pcgrad", "mgda", "cagrad", "nashmtl", "upgrad")
TASKS = ("left", "right")
OUT = "benchmarks/results/reproduce_multi_digit_cpu.jsonl"
PUBLISHED = {("multi_mnist", "pcgrad"): (96.58, 95.50), ("multi_mnist", "sum"): (90.30, 90.01)}


def base_config(dataset: str, args) -> dict:
    from mtl_jax.config import load_config  # noqa: PLC0415

    config = load_config(str(ROOT / CONFIGS[dataset]))
    config.update({"model": {"trunk": "lenet"}, "steps": args.steps, "batch_size": args.batch_size,
                   "log_every": max(1, args.steps // 20), "eval_every": 0,
                   "checkpoint": {"every": args.steps, "keep": 1}})
    if args.num_train:
        config["dataset_options"] = {**config.get("dataset_options", {}), "num_train": args.num_train}
    return config


def mean_conflict(workdir: Path) -> float:
    from mtl_jax.report.gradients import mean_conflict_rate  # noqa: PLC0415
    from mtl_jax.report.runs import read_run  # noqa: PLC0415

    return mean_conflict_rate(read_run(workdir))


def sweep(args) -> None:
    root = Path(args.workdir or tempfile.mkdtemp(prefix="mtl_jax_multi_digit_"))
    record = recorder(args.out)
    for dataset in args.datasets:
        base = base_config(dataset, args)
        for seed in args.seeds:
            baselines = {}
            for task in TASKS:
                config = {**base, "seed": seed, "tasks": [task], "aggregator": "sum", "gradient_stats": False,
                          "best_metric": f"{task}/accuracy"}
                workdir = root / f"{dataset}-single-{task}-{seed}"
                baselines[task] = str(workdir)
                done = train_once(config, workdir)
                if done:
                    results, wall, cpu = done
                    record({"benchmark": "reproduce_multi_digit", "dataset": dataset, "run": f"single:{task}",
                            "seed": seed, "steps": args.steps, "batch_size": args.batch_size,
                            "num_train": base["dataset_options"].get("num_train"),
                            "test": results["test"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)})
            for method in args.methods:
                config = {**base, "seed": seed, "tasks": list(TASKS), "aggregator": method, "baselines": baselines}
                workdir = root / f"{dataset}-{method}-{seed}"
                done = train_once(config, workdir)
                if done:
                    results, wall, cpu = done
                    record({"benchmark": "reproduce_multi_digit", "dataset": dataset, "run": method, "seed": seed,
                            "steps": args.steps, "batch_size": args.batch_size,
                            "num_train": base["dataset_options"].get("num_train"),
                            "test": results["test"], "delta_m": results.get("delta_m"),
                            "mean_conflict_rate": mean_conflict(workdir),
                            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)})


def summary(path: str) -> str:
    """The Markdown table: per dataset and run, left/right test accuracy (%) mean ± 95 % CI."""
    rows = read_rows(path)
    lines = ["| dataset | run | seeds | left acc. % | right acc. % | Δm% | conflict rate | published (left / right) |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        singles = {}
        for r in mine:
            if r["run"].startswith("single:"):
                singles.setdefault(r["seed"], {})[r["run"].split(":")[1]] = r["test"][r["run"].split(":")[1]]["accuracy"]
        runs = ["single-task"] + [m for m in dict.fromkeys(r["run"] for r in mine) if not m.startswith("single:")]
        for run in runs:
            if run == "single-task":
                left = [s["left"] for s in singles.values() if "left" in s]
                right = [s["right"] for s in singles.values() if "right" in s]
                delta, conflict, n = [], [], len(singles)
            else:
                chosen = [r for r in mine if r["run"] == run]
                left = [r["test"]["left"]["accuracy"] for r in chosen]
                right = [r["test"]["right"]["accuracy"] for r in chosen]
                delta = [r.get("delta_m") if r.get("delta_m") is not None else math.nan for r in chosen]
                conflict = [r.get("mean_conflict_rate", math.nan) for r in chosen]
                n = len(chosen)
            published = PUBLISHED.get((dataset, run))
            cited = f"{published[0]:.2f} / {published[1]:.2f} (Yu et al. 2020)" if published else "–"
            lines.append(f"| {dataset} | {run} | {n} | {fmt_interval(left, 100)} | {fmt_interval(right, 100)} | "
                         f"{fmt_interval(delta)} | {fmt_interval(conflict, digits=3)} | {cited} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-train", type=int, default=None, help="train pairs (default: the config's)")
    parser.add_argument("--workdir", default=None, help="run directories (default: a temporary one)")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--summary", action="store_true", help="print the Markdown table of --out and stop")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.out))
        return
    sweep(args)
    print(summary(args.out))


if __name__ == "__main__":
    main()

"""Quality on the same budget: single-task baselines vs multi-task methods, with Δm%.

Trains the default experiment (``experiments/dante_pos_emotions_pcgrad.py``: DANTEStocks,
UPOS tagging + 8 emotions, BiGRU encoder) once per task alone (equal budget: same steps,
batch and optimiser) and once per multi-task method, all with the same seed, and writes
one JSON line per run: the test metrics at the end of training, the
train time, and for multi-task runs Δm% (``mtl_jax.evaluation.delta_m``) over accuracy and
macro-F1 of every task against the single-task runs.

    python benchmarks/quality.py [--methods sum pcgrad upgrad] [--seeds 0] [--workdir DIR] [--out FILE]

Runs already finished in ``--workdir`` are skipped, so an interrupted sweep continues.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax

from mtl_jax.config import load_config
from mtl_jax.training.loop import train

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "dante_pos_emotions_pcgrad.py"


def run(config: dict, workdir: Path) -> tuple[dict, float] | None:
    """Train in ``workdir``; None when a finished run is already there (nothing to record)."""
    if (workdir / "results.json").exists():
        return None
    started = time.perf_counter()
    results = train(config, workdir=workdir, progress=False)
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["sum", "pcgrad", "upgrad", "mgda"])
    parser.add_argument("--modes", nargs="+", default=["full"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", default=None, help="run directories (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results/quality_dante_cpu.jsonl")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="mtl_jax_quality_"))
    base = load_config(str(CONFIG))
    device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"

    def record(row: dict) -> None:
        row.update({"device": device, "host": platform.node(), "jax": jax.__version__})
        print(json.dumps(row), flush=True)
        with open(args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    for seed in args.seeds:
        tasks = [name for name in ("upos", "trust", "disgust", "joy", "sadness", "anticipation", "surprise", "anger", "fear")]
        baselines = {}
        for task in tasks:
            config = {**base, "seed": seed, "tasks": [task], "aggregator": "sum", "best_metric": f"{task}/macro_f1"}
            workdir = root / f"single-{task}-{seed}"
            done = run(config, workdir)
            baselines[task] = str(workdir)
            if done is None:
                continue
            results, seconds = done
            record({"benchmark": "quality", "dataset": "dante_tweets", "run": f"single:{task}", "seed": seed,
                    "steps": config["steps"], "seconds": round(seconds, 1), "test": results["test"]})
        for method in args.methods:
            for mode in args.modes:
                config = {**base, "seed": seed, "aggregator": method, "mode": mode, "baselines": baselines}
                done = run(config, root / f"{method}-{mode}-{seed}")
                if done is None:
                    continue
                results, seconds = done
                record({"benchmark": "quality", "dataset": "dante_tweets", "run": f"{method}:{mode}", "seed": seed,
                        "steps": config["steps"], "seconds": round(seconds, 1), "test": results["test"],
                        "delta_m": results.get("delta_m")})


if __name__ == "__main__":
    main()

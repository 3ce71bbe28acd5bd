"""Quality on the same budget: single-task baselines vs multi-task methods, with Δm%.

A thin call of ``mtl-jax compare`` (:mod:`mtl_jax.tuning.compare`) on the default
experiment (``experiments/dante_pos_emotions_pcgrad.py``: DANTEStocks, UPOS tagging + 8
emotions, BiGRU encoder): one single-task run per task and seed (cached in
``--baselines-dir``), then every method × seed on the same budget; the table (per-task
test metrics mean ± sd, Δm% mean ± sd with its 95 % Student-t interval, mean rank) is
``<workdir>/compare.md`` — the README's quality table — and one JSON line with the whole
table, the device and the versions is appended to ``--out``.

    python benchmarks/quality.py [--methods sum pcgrad upgrad ...] [--seeds 3] [--workers 1] [--workdir DIR] [--out FILE]

Finished runs are reused, so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import jax

from mtl_jax.tuning.compare import CompareRequest, run_compare

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "dante_pos_emotions_pcgrad.py"
METHODS = ("sum", "pcgrad", "upgrad", "nashmtl", "cagrad", "mgda", "famo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--workdir", default="runs/compare-quality")
    parser.add_argument("--baselines-dir", default="runs/baselines")
    parser.add_argument("--out", default="benchmarks/results/quality_dante_cpu.jsonl")
    args = parser.parse_args()
    request = CompareRequest(config=str(CONFIG), methods=tuple(args.methods), seeds=args.seeds, workers=args.workers,
                             workdir=args.workdir, baselines_dir=args.baselines_dir)
    run_compare(request)
    table = json.loads((Path(args.workdir) / "compare.json").read_text(encoding="utf-8"))
    row = {"benchmark": "quality", "dataset": "dante_tweets", "table": table,
           "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "host": platform.node(), "jax": jax.__version__}
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

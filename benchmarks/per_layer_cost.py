"""What the gradient statistics cost: the default experiment's train step with
``gradient_stats`` off, on (whole-trunk Gramian: cosines, norms, conflict rate) and
``"per_layer"`` (one Gramian per top-level module of the shared trunk).

The default experiment (``experiments/dante_pos_emotions_pcgrad.py``: DANTEStocks, UPOS + 8
emotions, BiGRU, batch 64, PCGrad in full mode) is built three times, differing only in
``gradient_stats``; each step is compiled once and then timed in interleaved rounds (every
variant once per round, so machine noise hits all alike) on the same real batch. One JSON
line per variant: the median step in ms, its ratio to the run with statistics off, and the
compiled step's temporary bytes (XLA's memory analysis), with the device.

    python benchmarks/per_layer_cost.py [--rounds 7] [--steps-per-round 5] [--out benchmarks/results/per_layer_cost_cpu.jsonl]

Note: ``"per_layer"`` needs the per-task gradients of every shared leaf, so it takes the
materialised Jacobian even where the Gramian engine would otherwise serve PCGrad; the
``engine`` field of each row says which path ran.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax

from mtl_jax.config import load_config, parse
from mtl_jax.parallel import replicate
from mtl_jax.training.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "dante_pos_emotions_pcgrad.py"
VARIANTS = {"off": False, "on": True, "per_layer": "per_layer"}


def build(variant, overrides: list[str]):
    """(step function, state, placed batch, temp bytes, engine used) of one variant."""
    config = parse(load_config(CONFIG), [*overrides, f"gradient_stats={variant!r}"])
    experiment = Experiment.from_config(config)
    state = replicate(experiment.initial_state(), experiment.mesh)
    batch = experiment.step.place_batch(next(iter(experiment.train_batches())))
    compiled = experiment.step.jitted.lower(state, batch).compile()
    analysis = compiled.memory_analysis()
    temp = None if analysis is None else int(analysis.temp_size_in_bytes)
    engine = variant != "per_layer" and config.mode == "full" and not config.jacobian_chunk  # surgery/step.py's choice
    return compiled, state, batch, temp, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps-per-round", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="extra config overrides (KEY=VALUE)")
    parser.add_argument("--out", default="benchmarks/results/per_layer_cost_cpu.jsonl")
    args = parser.parse_args()
    built = {name: build(value, args.set) for name, value in VARIANTS.items()}
    states = {name: b[1] for name, b in built.items()}
    times: dict[str, list[float]] = {name: [] for name in built}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, (compiled, _, batch, _, _) in built.items():
            start = time.perf_counter()
            for _ in range(args.steps_per_round):
                states[name], metrics = compiled(states[name], batch)
            jax.block_until_ready((states[name], metrics))
            if round_index:
                times[name].append((time.perf_counter() - start) / args.steps_per_round * 1e3)
    base = statistics.median(times["off"])
    device = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    with open(args.out, "a", encoding="utf-8") as out:
        for name, (_, _, _, temp, engine) in built.items():
            median = statistics.median(times[name])
            row = {"benchmark": "per_layer_cost", "experiment": CONFIG.stem, "gradient_stats": VARIANTS[name],
                   "median_ms": round(median, 3), "ratio_to_off": round(median / base, 3), "temp_bytes": temp,
                   "engine": engine, "rounds": args.rounds, "steps_per_round": args.steps_per_round,
                   "device": device, "host": platform.node(), "jax": jax.__version__,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
            print(json.dumps(row))
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

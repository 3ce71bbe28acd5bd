"""Step-time benchmark of the compiled multi-task train step (one JSON line per case).

Reference case (issue 2): MLP trunk 784→512→512→512 (ReLU), T linear heads of 10 classes,
global batch 256, T ∈ {2, 4, 8}. Cases per T:

- ``ew``: equal weighting, one backward pass of the summed loss (the cheapest step);
- ``jacobian_sum``: the T-row Jacobian of the shared parameters, then its plain sum — the
  floor for any full-parameter surgery;
- ``pcgrad``/full, engine off: Jacobian, Gramian, PCGrad weights, weighted sum;
- full mode of every Gramian weighting: the Gramian engine (``mtl_jax.surgery.gramian_engine``,
  ``"engine": true`` in the row), J never formed;
- ``pcgrad``/representation: surgery on the gradients of the trunk output, one trunk backward;
- ``--modes instance``: the B·T per-example objectives (``mtl_jax.surgery.instance``), their
  (B·T)×(B·T) Gramian on the representation path; rows carry ``objectives`` = B·T. With
  several ``--batch`` sizes, a case whose median step exceeds ``--max-step-ms`` (or whose
  compile exceeds ``--max-compile-s``) is not run at the larger sizes (a ``"skipped"`` line
  says so). The instance-mode rows of ``results/step_time_cpu_instance.jsonl``:

      python benchmarks/step_time.py --tasks 2 --batch 32 64 128 256 512 --rounds 3 \
          --steps-per-round 2 --max-step-ms 150 --max-compile-s 60 --ew-baseline-only \
          --cases pcgrad:representation upgrad:representation pcgrad:instance upgrad:instance

- every registered method (``mtl_jax.aggregators.REGISTRY``) in each mode it supports
  (``--methods all``, the default; ``constant`` gets the weights 1..T).

Steps are timed in interleaved rounds (every case once per round) so that machine noise hits
all cases alike; ratios are between medians measured in the same run. Every row carries the
compiled step's temporary bytes (``temp_bytes``, XLA's memory analysis), their ratio to EW's,
and ``peak_bytes`` where the backend reports a peak (GPU), else null. Gradient statistics
are off so that only the method's own work is timed (loss-level weightings then take the
one-backward fast path). A method that cannot run at some T (Krum needs T ≥ 5, TrimmedMean
T ≥ 3) gives a ``"skipped"`` line with the reason.

    python benchmarks/step_time.py [--tasks 2 4 8] [--batch 32 64 128] [--methods pcgrad moco uw] [--modes full instance]
        [--cases pcgrad:full pcgrad:full:materialised uw:representation] [--out benchmarks/results/step_time_cpu.jsonl]

The weighting computation alone (Gramian → weights) is measured by
``benchmarks/weighting_cost.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import NamedTuple

import jax
import numpy as np
import optax
from flax import nnx

from mtl_jax.aggregators import REGISTRY, GramianWeighting, get_aggregator
from mtl_jax.models import MLPTrunk, build_model, classification_task
from mtl_jax.surgery import create_train_state, data_mesh, make_train_step, replicate, shard_batch
from mtl_jax.surgery.instance import supported_modes

HIDDEN = (512, 512, 512)
INPUT = 784
CLASSES = 10


class Case(NamedTuple):
    method: str
    mode: str
    engine: bool = True  # full mode, Gramian weightings: the Gramian engine (False: J materialised)


BASELINES = (Case("ew", "full"), Case("jacobian_sum", "full", False), Case("pcgrad", "full", False))
MODES = ("full", "representation", "instance")
DEFAULT_MODES = ("full", "representation")


def _aggregator(method: str, num_tasks: int = 2):
    if method == "ew":
        return get_aggregator("sum")
    if method == "jacobian_sum":  # the sum, but forced through the per-task Jacobian
        # a Gramian weighting keeps the step off its one-backward paths (the weights do not
        # read the Gramian, so XLA drops it): J is formed, then summed.
        ew = get_aggregator("sum")
        return GramianWeighting("jacobian_sum", ew.init, ew.weigh)
    if method == "constant":
        return get_aggregator("constant", weights=[float(t + 1) for t in range(num_tasks)])
    return get_aggregator(method)


def _parse_case(item: str) -> Case:
    method, mode, *rest = item.split(":")
    return Case(method, mode, rest != ["materialised"])


def select_cases(methods: list[str], modes: list[str], explicit: list[str], baselines: tuple[Case, ...] = BASELINES) -> list[Case]:
    """The baselines, then ``method:mode`` pairs (explicit) or methods × supported modes."""
    if explicit:  # method:mode, or method:full:materialised for the engine turned off
        chosen = [_parse_case(item) for item in explicit]
    else:
        names = sorted(REGISTRY) if methods == ["all"] else methods
        chosen = [Case(m, mode) for m in names for mode in modes if mode in supported_modes(_aggregator(m))]
    unknown = sorted({c.method for c in chosen} - set(REGISTRY))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; accepted: {', '.join(sorted(REGISTRY))}")
    return list(baselines) + [c for c in chosen if c not in baselines]


def _batch(rng: np.random.Generator, batch_size: int, num_tasks: int) -> dict:
    batch = {"image": rng.random((batch_size, INPUT), dtype=np.float32)}
    batch.update({f"task{t}": rng.integers(0, CLASSES, batch_size).astype(np.int32) for t in range(num_tasks)})
    return batch


class Runner:
    """One compiled step and its state for one case."""

    def __init__(self, case: Case, num_tasks: int, batch, mesh):
        rngs = nnx.Rngs(0)
        tasks = [classification_task(f"task{t}", CLASSES) for t in range(num_tasks)]
        model, params = build_model(MLPTrunk(INPUT, HIDDEN, input_key="image", rngs=rngs), HIDDEN[-1], tasks, rngs)
        aggregator, optimizer = _aggregator(case.method, num_tasks), optax.adam(1e-4)
        self.aggregator = aggregator
        self.state = replicate(create_train_state(params, optimizer, aggregator, num_tasks, 0), mesh)
        self.step = make_train_step(
            model, aggregator, optimizer, mesh, mode=case.mode, gradient_stats=False, gramian_engine=case.engine
        )
        self.batch = batch
        started = time.perf_counter()
        compiled = self.step.jitted.lower(self.state, batch).compile()
        self.compile_seconds = time.perf_counter() - started
        self.memory = memory_fields(compiled)
        self.run(2)  # warm-up
        self.times: list[float] = []

    def run(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))
        return (time.perf_counter() - started) / steps


def memory_fields(compiled) -> dict:
    """Compiled temporary bytes (XLA's memory analysis) and, where the backend reports it,
    the peak: the compiled estimate, else the device allocator's peak so far (GPU)."""
    analysis = compiled.memory_analysis()
    fields = {"temp_bytes": int(analysis.temp_size_in_bytes) if analysis is not None else None}
    peak = getattr(analysis, "peak_memory_in_bytes", None)
    if not peak and jax.devices()[0].platform != "cpu":  # the CPU allocator's peak is process-wide
        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
    fields["peak_bytes"] = int(peak) if peak else None
    return fields


def emit(row: dict, out_path: str | None) -> None:
    """Print ``row`` as a JSON line and append it to ``out_path`` when given."""
    line = json.dumps(row)
    print(line, flush=True)
    if out_path:
        with open(out_path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def device_fields(mesh) -> dict:
    device = jax.devices()[0]
    return {
        "devices": mesh.size,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "host": platform.node(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jax": jax.__version__,
    }


def measure(
    num_tasks: int, batch_size: int, rounds: int, steps_per_round: int, mesh, cases: list[Case]
) -> list[dict]:
    rng = np.random.default_rng(num_tasks)
    batch = shard_batch(_batch(rng, batch_size, num_tasks), mesh)
    runners, skipped = {}, []
    for case in cases:
        try:
            runners[case] = Runner(case, num_tasks, batch, mesh)
        except ValueError as error:  # e.g. Krum at T < 5
            skipped.append({"benchmark": "step_time", "method": case.method, "mode": case.mode, "engine": case.engine,
                            "tasks": num_tasks, "skipped": str(error), **device_fields(mesh)})
    for _ in range(rounds):
        for runner in runners.values():
            runner.times.append(runner.run(steps_per_round))
    medians = {case: statistics.median(r.times) for case, r in runners.items()}
    ew, jac_sum = medians[Case("ew", "full")], medians.get(Case("jacobian_sum", "full", False))
    ew_temp = runners[Case("ew", "full")].memory["temp_bytes"]
    return skipped + [
        {
            "benchmark": "step_time",
            "method": case.method,
            "mode": case.mode,
            "engine": case.engine and case.mode == "full" and isinstance(runner.aggregator, GramianWeighting),
            "tasks": num_tasks,
            "batch": batch_size,
            "objectives": batch_size * num_tasks if case.mode == "instance" else num_tasks,
            "model": "mlp " + "-".join(map(str, (INPUT, *HIDDEN))),
            **device_fields(mesh),
            "compile_s": round(runner.compile_seconds, 3),
            "median_step_ms": round(1e3 * medians[case], 4),
            "examples_per_s": round(batch_size / medians[case], 1),
            "ratio_to_ew": round(medians[case] / ew, 4),
            "ratio_to_jacobian_sum": round(medians[case] / jac_sum, 4) if jac_sum else None,
            **runner.memory,
            "temp_ratio_to_ew": round(runner.memory["temp_bytes"] / ew_temp, 3) if ew_temp else None,
            "rounds": rounds,
            "steps_per_round": steps_per_round,
        }
        for case, runner in runners.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--batch", type=int, nargs="+", default=[256], help="global batch size(s), ascending")
    parser.add_argument("--max-step-ms", type=float, default=None,
                        help="with several batch sizes: drop a case from the larger ones once its median step exceeds this")
    parser.add_argument("--ew-baseline-only", action="store_true",
                        help="time EW alone as the baseline (no Jacobian+sum, no materialised PCGrad)")
    parser.add_argument("--max-compile-s", type=float, default=None, help="likewise for its compile time")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps-per-round", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["all"], help="registry names, or 'all'")
    parser.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    parser.add_argument("--cases", nargs="+", default=[], help="method:mode pairs (overrides --methods/--modes)")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    args = parser.parse_args()
    mesh = data_mesh()
    cases = select_cases(args.methods, args.modes, args.cases, BASELINES[:1] if args.ew_baseline_only else BASELINES)
    for num_tasks in args.tasks:
        too_slow: dict[Case, str] = {}
        for batch_size in sorted(args.batch):
            for case, reason in too_slow.items():
                emit({"benchmark": "step_time", "method": case.method, "mode": case.mode, "tasks": num_tasks,
                      "batch": batch_size, "skipped": reason, **device_fields(mesh)}, args.out)
            kept = [c for c in cases if c not in too_slow or c in BASELINES]
            for row in measure(num_tasks, batch_size, args.rounds, args.steps_per_round, mesh, kept):
                emit(row, args.out)
                slow = args.max_step_ms is not None and row.get("median_step_ms", 0.0) > args.max_step_ms
                slow = slow or (args.max_compile_s is not None and row.get("compile_s", 0.0) > args.max_compile_s)
                if slow and "skipped" not in row and row["mode"] != "full":  # full-mode cases are all kept
                    case = Case(row["method"], row["mode"])
                    if case in kept:
                        too_slow[case] = (f"at batch {batch_size}: median step {row['median_step_ms']} ms, compile"
                                          f" {row['compile_s']} s (limits {args.max_step_ms} ms, {args.max_compile_s} s)")


if __name__ == "__main__":
    main()

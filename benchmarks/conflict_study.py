"""Does lower measured gradient conflict go with better Δm%? The default NLP experiment and QM9.

For each method and seed, the default experiment (``experiments/dante_pos_emotions_pcgrad.py``:
DANTEStocks, UPOS + 8 emotions, BiGRU, 500 steps of batch 64) is trained for
``--conflict-steps`` steps with gradient statistics logged every ``--log-every`` steps; the
mean conflict rate (fraction of the 36 task pairs with negative cosine) and the mean pairwise
cosine of those steps are set against the run's Δm% vs single-task training.

Δm%: when ``--conflict-steps`` is the full 500, from the run itself against the single-task
test metrics of the same seed in ``benchmarks/results/quality_dante_cpu.jsonl``
(``benchmarks/quality.py``, same budget); when shorter, the conflict is that of the first
steps of the same config (no schedule depends on the total: the first steps are the same
steps), and Δm% is the 500-step run's, read from that file.

``--layers METHOD``: a second part trains METHOD with a small loop of its own that, every
``--log-every`` steps, also computes per-module Gramians
(``mtl_jax.surgery.gradient_stats.layer_statistics``: embedding, each GRU direction) on the
same batch and logs them under the names of ``layer_scalars``, then writes a
``mtl-jax report`` of that run (per-layer figures included).

    python benchmarks/conflict_study.py --methods sum pcgrad mgda cagrad nashmtl upgrad famo --seeds 0 1 2 \
        --conflict-steps 500                       # the full study (about 1.5 CPU-min per run)
    python benchmarks/conflict_study.py --summary  # figure + correlation from the results files
    # the QM9 half, from the runs of benchmarks/reproduce_qm9.py (Δm% vs single-task):
    python benchmarks/conflict_study.py --qm9-results benchmarks/results/reproduce_qm9_cpu.jsonl --qm9-runs RUNS_DIR
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from reproduce_common import pearson_interval, read_rows, recorder, spearman, train_once

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "dante_pos_emotions_pcgrad.py"
QUALITY = ROOT / "benchmarks" / "results" / "quality_dante_cpu.jsonl"
OUT = "benchmarks/results/conflict_study_dante_cpu.jsonl"
FIGURE = "benchmarks/results/conflict_study_dante.png"
OUT_QM9 = "benchmarks/results/conflict_study_qm9_cpu.jsonl"
FIGURE_QM9 = "benchmarks/results/conflict_study_qm9.png"
FULL_STEPS = 500


def quality_rows() -> tuple[dict, dict]:
    """({seed: {task: test metrics}} of the single-task runs, {(method, seed): Δm%})."""
    singles, deltas = {}, {}
    for row in read_rows(str(QUALITY)):
        kind, _, name = row["run"].partition(":")
        if kind == "single":
            singles.setdefault(row["seed"], {})[name] = row["test"][name]
        elif row.get("delta_m") is not None and name == "full":
            deltas[(kind, row["seed"])] = row["delta_m"]
    return singles, deltas


def conflict_numbers(workdir: Path) -> dict:
    from mtl_jax.report.gradients import gradient_series, mean_conflict_rate, mean_pairwise_cosine  # noqa: PLC0415
    from mtl_jax.report.runs import read_run  # noqa: PLC0415

    run = read_run(workdir)
    series = gradient_series(run)
    return {"mean_conflict_rate": mean_conflict_rate(run), "mean_cosine": mean_pairwise_cosine(series),
            "logged_steps": int(series.steps.size)}


def study(args, base: dict) -> None:
    from mtl_jax.evaluation.delta_m import delta_m  # noqa: PLC0415

    root = Path(args.workdir or tempfile.mkdtemp(prefix="mtl_jax_conflict_"))
    record = recorder(args.out)
    singles, deltas = quality_rows()
    for seed in args.seeds:
        for method in args.methods:
            config = {**base, "seed": seed, "aggregator": method, "steps": args.conflict_steps,
                      "log_every": args.log_every, "eval_every": 0, "gradient_stats": True,
                      "checkpoint": {"every": args.conflict_steps, "keep": 1}}
            workdir = root / f"{method}-{seed}-{args.conflict_steps}"
            done = train_once(config, workdir)
            if not done:
                continue
            results, wall, cpu = done
            if args.conflict_steps == FULL_STEPS and seed in singles:
                metrics = {t: ("accuracy", "macro_f1") for t in results["test"]}
                value, source = delta_m(results["test"], singles[seed], metrics), "this run vs quality_dante_cpu single-task"
            else:
                value, source = deltas.get((method, seed), math.nan), "500-step run in quality_dante_cpu.jsonl"
            record({"benchmark": "conflict_study", "dataset": "dante_tweets", "method": method, "seed": seed,
                    "conflict_steps": args.conflict_steps, "log_every": args.log_every, "delta_m": value,
                    "delta_m_source": source, **conflict_numbers(workdir), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)})


def layer_run(args, base: dict, method: str) -> Path:
    """Train ``method`` with per-layer statistics (``gradient_stats: "per_layer"``: the Gramian of
    each top-level module of the trunk — embedding, each GRU direction — logged every
    ``--log-every`` steps); return the run directory."""
    config = {**base, "seed": args.seeds[0], "aggregator": method, "steps": args.conflict_steps,
              "log_every": args.log_every, "eval_every": 0, "gradient_stats": "per_layer",
              "checkpoint": {"every": args.conflict_steps, "keep": 1}}
    run_dir = Path(args.workdir or tempfile.mkdtemp(prefix="mtl_jax_layers_")) / f"layers-{method}-{config['seed']}"
    train_once(config, run_dir)
    return run_dir


def qm9_study(args) -> None:
    """Conflict rows of the QM9 reproduction: each multi-task run of ``--qm9-results``
    (``benchmarks/reproduce_qm9.py``, Δm% vs its single-task runs) with the conflict numbers
    read from its run directory under ``--qm9-runs``."""
    record = recorder(args.out_qm9)
    for row in read_rows(args.qm9_results):
        workdir = Path(args.qm9_runs) / f"{row['run']}-{row['seed']}"
        if row["run"].startswith("single:") or row.get("delta_m") is None or not workdir.is_dir():
            continue
        record({"benchmark": "conflict_study", "dataset": "qm9", "method": row["run"], "seed": row["seed"],
                "conflict_steps": row["steps"], "log_every": max(1, row["steps"] // 30), "delta_m": row["delta_m"],
                "delta_m_source": "this run vs its single-task runs (reproduce_qm9)", **conflict_numbers(workdir)})


def summary(path: str, figure: str | None) -> str:
    rows = [r for r in read_rows(path) if math.isfinite(r.get("delta_m", math.nan))]
    if not rows:
        return "no rows"
    lines = []
    for key, label in (("mean_conflict_rate", "mean conflict rate"), ("mean_cosine", "mean pairwise cosine")):
        x, y = [r[key] for r in rows], [r["delta_m"] for r in rows]
        r, low, high, n = pearson_interval(x, y)
        lines.append(f"{label} vs Δm%: Pearson r = {r:+.2f} (95% CI {low:+.2f} … {high:+.2f}, Fisher z), "
                     f"Spearman ρ = {spearman(x, y):+.2f}, n = {n} runs")
    lines.append("| method | seed | conflict steps | mean conflict rate | mean cosine | Δm% |")
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        lines.append(f"| {r['method']} | {r['seed']} | {r['conflict_steps']} | {r['mean_conflict_rate']:.3f} | "
                     f"{r['mean_cosine']:+.4f} | {r['delta_m']:+.2f} |")
    if figure:
        draw(rows, figure, lines[:2])
    return "\n".join(lines)


def draw(rows: list[dict], path: str, titles: list[str]) -> None:
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    from matplotlib import colormaps  # noqa: PLC0415

    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    colours = {m: palette(i) for i, m in enumerate(methods)}
    for ax, key, title in zip(axes, ("mean_conflict_rate", "mean_cosine"), titles):
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            ax.scatter([r[key] for r in mine], [r["delta_m"] for r in mine], color=colours[method], label=method, s=40)
        ax.set_xlabel(key.replace("_", " ")), ax.set_ylabel("Δm% (lower is better)"), ax.grid(alpha=0.3)
        ax.set_title(title.split(", Spearman")[0], fontsize=8)
    axes[0].legend(fontsize=8)
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["sum", "pcgrad", "mgda", "cagrad", "nashmtl", "upgrad", "famo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--conflict-steps", type=int, default=FULL_STEPS)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--figure", default=FIGURE)
    parser.add_argument("--layers", default=None, metavar="METHOD", help="run the per-layer part for METHOD only")
    parser.add_argument("--report-out", default="benchmarks/results/conflict_study_layers_report")
    parser.add_argument("--qm9-results", default=None, metavar="FILE",
                        help="the QM9 half: read reproduce_qm9.py's rows (FILE) and run directories (--qm9-runs)")
    parser.add_argument("--qm9-runs", default=None, metavar="DIR")
    parser.add_argument("--out-qm9", default=OUT_QM9)
    parser.add_argument("--figure-qm9", default=FIGURE_QM9)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.out, args.figure))
        print(summary(args.out_qm9, args.figure_qm9))
        return
    if args.qm9_results:
        qm9_study(args)
        print(summary(args.out_qm9, args.figure_qm9))
        return
    from mtl_jax.config import load_config  # noqa: PLC0415

    base = load_config(str(CONFIG))
    if args.layers:
        run_dir = layer_run(args, base, args.layers)
        from mtl_jax.report import build_report  # noqa: PLC0415

        report = build_report([run_dir], args.report_out)
        print(f"per-layer run {run_dir}; report {report.page}")
        return
    study(args, base)
    print(summary(args.out, args.figure))


if __name__ == "__main__":
    main()

"""The method table of ``mtl-jax compare``, from the runs' ``results.json`` files.

Rows: the single-task baselines, then each method. Columns: every (task, metric) that Δm%
compares, as mean ± sd over the seeds (sample sd); Δm% as mean ± sd and its 95 % Student-t
interval (:func:`mtl_jax.tuning.statistics.t_interval`); the mean rank of the method over
the columns (rank 1 = best mean among the methods; the baselines are not ranked). Written
as JSON (every per-seed value and run directory included), markdown, and a PNG chart of
Δm% with its intervals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mtl_jax.tuning.statistics import average_ranks, mean_sd, t_interval

INTERVAL = "95% Student t: mean ± t(0.975, n-1) · sd / sqrt(n) over the seeds"
BASELINE = "single-task"

Run = tuple[str, int, Mapping[str, Any], str]  # (row label or task, seed, results, run dir)


def _summary(values: Sequence[float]) -> dict[str, Any]:
    mean, sd = mean_sd(values)
    return {"mean": mean, "sd": sd, "values": list(values)}


def build_table(
    *,
    config: str,
    split: str,
    metrics: Mapping[str, Sequence[str]],
    seeds: Sequence[int],
    baselines: Sequence[Run],
    methods: Sequence[Run],
    higher_is_better: Callable[[str], bool],
) -> dict[str, Any]:
    """The table as a JSON-ready dict (module docstring). ``baselines`` rows are
    (task, seed, results, run dir); ``methods`` rows are (method label, seed, results, run dir)."""
    columns = [(task, metric) for task, names in metrics.items() for metric in names]
    baseline_row: dict[str, Any] = {"method": BASELINE, "runs": [r[3] for r in baselines], "metrics": {}, "delta_m": None, "mean_rank": None}
    for task, metric in columns:
        values = [results["test"][task][metric] for name, seed, results, _ in baselines if name == task]
        baseline_row["metrics"][f"{task}/{metric}"] = _summary(values)
    rows = []
    for label in dict.fromkeys(label for label, *_ in methods):
        own = [(seed, results, run_dir) for name, seed, results, run_dir in methods if name == label]
        row: dict[str, Any] = {"method": label, "runs": [r[2] for r in own], "metrics": {}}
        for task, metric in columns:
            row["metrics"][f"{task}/{metric}"] = _summary([results["test"][task][metric] for _, results, _ in own])
        deltas = [results["delta_m"] for _, results, _ in own]
        interval = t_interval(deltas)
        row["delta_m"] = {**_summary(deltas), "ci95": list(interval) if interval else None}
        rows.append(row)
    for task, metric in columns:
        key = f"{task}/{metric}"
        ranks = average_ranks([row["metrics"][key]["mean"] for row in rows], higher_is_better(metric))
        for row, rank in zip(rows, ranks):
            row.setdefault("ranks", {})[key] = rank
    for row in rows:
        row["mean_rank"] = sum(row["ranks"].values()) / len(row["ranks"])
    return {
        "config": config, "split": split, "seeds": list(seeds), "interval": INTERVAL, "sd": "sample (n - 1)",
        "columns": [f"{task}/{metric}" for task, metric in columns], "rows": [baseline_row, *rows],
    }


def write_json(path: Path, table: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")


def _cell(summary: Mapping[str, Any], digits: int) -> str:
    if len(summary["values"]) < 2:
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}"


def markdown(table: Mapping[str, Any]) -> str:
    columns = table["columns"]
    header = ["method", *columns, "Δm% (mean ± sd)", "Δm% 95% t-interval", "mean rank"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        cells = [row["method"], *(_cell(row["metrics"][c], 4) for c in columns)]
        if row["delta_m"] is None:
            cells += ["0 (reference)", "", ""]
        else:
            ci = row["delta_m"]["ci95"]
            cells += [_cell(row["delta_m"], 2), f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "n/a (one seed)", f"{row['mean_rank']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{table['split']} split, seeds {', '.join(map(str, table['seeds']))}; sd over the seeds ({table['sd']});"
        f" interval: {table['interval']}; Δm% against the same seed's single-task runs (negative = better);"
        " mean rank over the columns among the methods (1 = best)."
    )
    return "\n".join(lines)


def write_markdown(path: Path, table: Mapping[str, Any]) -> str:
    text = markdown(table)
    path.write_text(text + "\n", encoding="utf-8")
    return text


def write_chart(path: Path, table: Mapping[str, Any]) -> Path | None:
    """Δm% per method with its 95 % interval (sd when one seed); None without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415
    except ModuleNotFoundError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [row for row in table["rows"] if row["delta_m"] is not None]
    means = [row["delta_m"]["mean"] for row in rows]
    low = [m - (row["delta_m"]["ci95"] or [m - row["delta_m"]["sd"]])[0] for m, row in zip(means, rows)]
    high = [(row["delta_m"]["ci95"] or [0, m + row["delta_m"]["sd"]])[1] - m for m, row in zip(means, rows)]
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    positions = list(range(len(rows)))
    axes.barh(positions, means, xerr=[low, high], color=["tab:green" if m < 0 else "tab:red" for m in means], capsize=4)
    axes.set_yticks(positions, [row["method"] for row in rows])
    axes.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    axes.invert_yaxis()
    axes.set_xlabel("Δm% vs single-task (negative = better), 95% t-interval")
    axes.set_title(f"{Path(table['config']).stem}: {table['split']} split, {len(table['seeds'])} seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""``build_report(runs, out)``: the figures, the numbers and the page for one or several runs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtl_jax.report import figures
from mtl_jax.report.gradients import (
    gradient_series,
    layer_series,
    mean_conflict_rate,
    mean_pairwise_cosine,
    update_cosine_series,
    uses_jacobian_combine,
)
from mtl_jax.report.page import figure, note, page, table
from mtl_jax.report.runs import Run, read_runs
from mtl_jax.report.tables import comparison_rows, final_metrics

PAGE = "report.html"
SUMMARY = "summary.json"


@dataclass
class Report:
    """What was written: the page, the PNG files, the numbers shown and the notes."""

    page: Path
    figures: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def no_gradient_stats_note(run: Run) -> str:
    why = ("its config sets gradient_stats=False" if run.config.get("gradient_stats") is False
           else "metrics.jsonl has no grad_norm/grad_cosine/conflict_fraction records")
    return f"No conflict figures for {run.label}: the run logged no gradient statistics ({why})."


def update_cosine_note(run: Run, has_weights: bool) -> str:
    """Why the update-vs-mean-gradient cosine cannot be drawn."""
    needed = ("the step would need to log update_cosine = ⟨d, Σ_t g_t⟩ / (‖d‖ ‖Σ_t g_t‖) of the shared-parameter update d")
    if uses_jacobian_combine(run):
        return (f"No update-vs-mean-gradient cosine: {run.config.get('aggregator')} forms its update from J itself, "
                f"so the logged weights do not give it; {needed}.")
    return f"No update-vs-mean-gradient cosine: the run logged no task weights; {needed}."


def _run_numbers(run: Run) -> dict[str, Any]:
    series = gradient_series(run)
    numbers: dict[str, Any] = {
        "label": run.label, "path": str(run.path), "aggregator": run.config.get("aggregator"),
        "test": final_metrics(run), "validation": final_metrics(run, "validation"),
        "delta_m": (run.results or {}).get("delta_m"),
        "gradient_stats": series is not None,
    }
    if series is not None:
        numbers["mean_conflict_rate"] = mean_conflict_rate(run)
        numbers["mean_cosine"] = mean_pairwise_cosine(series)
        numbers["logged_steps"] = int(series.steps.size)
        update = update_cosine_series(run, series)
        if update is not None:
            values = update[1]
            finite = values[np.isfinite(values)]
            numbers["mean_update_cosine"] = float(finite.mean()) if finite.size else math.nan
    return numbers


def _final_table(run: Run) -> str:
    test = final_metrics(run)
    metrics = list(dict.fromkeys(m for named in test.values() for m in named))
    return table(["task", *metrics], [[t, *(named.get(m, math.nan) for m in metrics)] for t, named in test.items()])


def _single_run_blocks(run: Run, rendered: list[figures.Rendered], notes: list[str]) -> list[tuple[str, list[str]]]:
    curves = [figures.training_curves(run), figures.task_weights(run)]
    conflict: list[figures.Rendered | None] = []
    series = gradient_series(run)
    tasks = run.tasks
    if series is None:
        notes.append(no_gradient_stats_note(run))
    elif len(tasks) < 2:
        notes.append(f"No conflict figures for {run.label}: one task has no pairs.")
    else:
        conflict += [figures.conflict_rate(series), figures.cosine_heatmaps(series, tasks), figures.magnitudes(series, tasks)]
        update = update_cosine_series(run, series)
        if update is None:
            notes.append(update_cosine_note(run, series.weights is not None))
        else:
            conflict.append(figures.update_cosine(*update))
        if run.config.get("mode") == "representation":
            notes.append("Representation mode: gradients, cosines and norms are those of the shared representation z.")
        layers = layer_series(run)
        if layers is None:
            notes.append('No per-layer figures: the run logged no layer_* statistics (gradient_stats: "per_layer").')
        else:
            conflict.append(figures.layer_figures(layers))
    curves, conflict = [f for f in curves if f], [f for f in conflict if f]
    rendered += curves + conflict
    numbers = _run_numbers(run)
    summary_rows = [["final step", (run.results or {}).get("step", "–")]]
    if series is not None:
        summary_rows += [["mean conflict rate", numbers["mean_conflict_rate"]], ["mean pairwise cosine", numbers["mean_cosine"]]]
        if "mean_update_cosine" in numbers:
            summary_rows.append(["mean cos(update, mean gradient)", numbers["mean_update_cosine"]])
    if numbers["delta_m"] is not None:
        summary_rows.append(["Δm% vs baselines", float(numbers["delta_m"])])
    final = [_final_table(run)] if run.results else [note(n) for n in run.notes]
    return [
        ("Final metrics (test split)", final + [table(["quantity", "value"], summary_rows)]),
        ("Training", [figure(f) for f in curves]),
        ("Gradient conflict", [note(n) for n in notes] + [figure(f) for f in conflict]),
    ]


def _comparison_blocks(
    runs: list[Run], rendered: list[figures.Rendered], notes: list[str]
) -> tuple[list[tuple[str, list[str]]], list[dict[str, Any]]]:
    rows, delta_note = comparison_rows(runs)
    tasks = list(dict.fromkeys(t for r in runs for t in r.tasks))
    main = {t: next((m for m in ("accuracy", "mae", "macro_f1", "loss") if any(m in row["test"].get(t, {}) for row in rows)), None) for t in tasks}
    header = ["run", "aggregator", "mode", "seed", "steps", *(f"{t} {main[t]}" for t in tasks if main[t]),
              "Δm%", "mean rank", "mean conflict rate", "mean cosine"]
    body = [[r["run"], r["aggregator"], r["mode"], r["seed"], r["steps"],
             *(r["test"].get(t, {}).get(main[t], math.nan) for t in tasks if main[t]),
             r["delta_m"], r["mean_rank"], r["mean_conflict_rate"], r["mean_cosine"]] for r in rows]
    notes.append(delta_note)
    overlays = [
        figures.overlaid_curves(runs, "train", "loss", "Train loss, all runs", "overlay_train_loss"),
        *(figures.overlaid_curves(runs, "eval", m, f"Evaluation {m}, all runs", f"overlay_eval_{m}")
          for m in ("accuracy", "mae") if any(any(k.startswith(f"{m}/") for k in r.names(r.eval_split)) for r in runs)),
    ]
    with_stats = [(r, s) for r in runs if (s := gradient_series(r)) is not None and len(r.tasks) > 1]
    if with_stats:
        overlays.append(figures.overlaid_conflict(with_stats))
    missing = [r.label for r in runs if gradient_series(r) is None]
    if missing:
        notes.append(f"No conflict statistics for {', '.join(missing)}: they logged no gradient statistics.")
    overlays = [f for f in overlays if f]
    rendered += overlays
    return [("Comparison", [table(header, body)] + [note(n) for n in notes]), ("Overlaid curves", [figure(f) for f in overlays])], rows


def build_report(run_dirs: list[str | Path], out: str | Path, *, per_run: bool = True) -> Report:
    """Write ``out/report.html`` (self-contained), ``out/<figure>.png`` and ``out/summary.json``.

    One run: its curves, weights, conflict figures and final metrics; several: the
    comparison table and overlaid curves, then (``per_run``) each run's own section.
    """
    runs = read_runs(list(run_dirs))  # ConfigError before anything is written
    out = Path(out)
    rendered: list[figures.Rendered] = []
    notes: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    summary: dict[str, Any] = {"runs": []}
    if len(runs) > 1:
        blocks, rows = _comparison_blocks(runs, rendered, notes)
        sections += blocks
        summary["comparison"] = rows
    for index, run in enumerate(runs):
        if len(runs) > 1 and not per_run:
            summary["runs"].append(_run_numbers(run) | {"notes": run.notes})
            continue
        own: list[figures.Rendered] = []
        run_notes: list[str] = []
        blocks = _single_run_blocks(run, own, run_notes)
        prefix = f"run{index}_" if len(runs) > 1 else ""
        own = [figures.Rendered(prefix + f.name, f.title, f.caption, f.png) for f in own]
        rendered += own
        notes += run_notes
        if len(runs) > 1:
            blocks = [(f"{run.label}: {heading.lower()}", content) for heading, content in blocks]
        sections += blocks
        summary["runs"].append(_run_numbers(run) | {"notes": run_notes + run.notes})
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for f in rendered:
        paths[f.name] = out / f"{f.name}.png"
        paths[f.name].write_bytes(f.png)
    title = f"mtl-jax report: {runs[0].label}" if len(runs) == 1 else f"mtl-jax report: {len(runs)} runs"
    meta = " · ".join(str(r.path) for r in runs)
    (out / PAGE).write_text(page(title, meta, sections), encoding="utf-8")
    summary["notes"] = notes
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    return Report(page=out / PAGE, figures=paths, summary=summary, notes=notes)

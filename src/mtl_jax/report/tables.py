"""The report's numbers: final per-task metrics, and the comparison of several runs.

Δm% (``mtl_jax.evaluation.delta_m``, Navon et al. 2022 sign: negative is better) is taken
from each run's ``results.json`` when the compared runs name the same single-task
baselines (config ``baselines``); otherwise, when single-task runs of every task are among
the reported runs, it is computed against them, over accuracy and macro-F1
(classification, tagging) or MAE (regression). Mean rank: for every compared (task,
metric), the runs are ranked (1 = best; ties share the mean rank), and the ranks averaged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mtl_jax.evaluation.delta_m import delta_m
from mtl_jax.evaluation.directions import higher_is_better
from mtl_jax.report.gradients import gradient_series, mean_conflict_rate, mean_pairwise_cosine
from mtl_jax.report.runs import Run

COMPARED_METRICS = ("accuracy", "macro_f1", "mae")


def final_metrics(run: Run, split: str = "test") -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from results.json (scalar metrics; per-label ones left out)."""
    table = (run.results or {}).get(split) or {}
    return {task: {m: float(v) for m, v in named.items() if "/" not in m} for task, named in table.items()}


def compared_metrics(test: dict[str, dict[str, float]]) -> dict[str, tuple[str, ...]]:
    return {task: tuple(m for m in COMPARED_METRICS if m in named) for task, named in test.items()}


def is_single_task(run: Run) -> bool:
    """A finished one-task run that is not itself compared with baselines."""
    return len(run.tasks) == 1 and run.results is not None and not run.config.get("baselines")


def _rank(values: list[float], higher: bool) -> list[float]:
    """1-based ranks, ties averaged."""
    keys = np.array([-v if higher else v for v in values])
    order = keys.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(keys):
        same = keys == value
        ranks[same] = ranks[same].mean()
    return ranks.tolist()


def mean_ranks(runs: list[Run]) -> list[float]:
    """Mean rank of each run over the (task, metric) pairs all of them report."""
    tests = [final_metrics(r) for r in runs]
    if len(runs) < 2 or not all(tests):
        return [math.nan] * len(runs)
    pairs = [(t, m) for t, ms in compared_metrics(tests[0]).items() for m in ms
             if all(m in test.get(t, {}) for test in tests)]
    if not pairs:
        return [math.nan] * len(runs)
    ranks = np.array([_rank([test[t][m] for test in tests], higher_is_better(m)) for t, m in pairs])
    return ranks.mean(axis=0).tolist()


def _delta_m_against(run: Run, baselines: dict[str, dict[str, float]]) -> float:
    test = final_metrics(run)
    try:
        return delta_m(test, baselines, compared_metrics(test))
    except (ValueError, KeyError):
        return math.nan


def delta_ms(runs: list[Run]) -> tuple[list[float], str]:
    """Δm% per run and a one-line note on where it comes from (NaN where not defined)."""
    multi = [r for r in runs if not is_single_task(r)]
    shared = {repr(sorted(r.config.get("baselines", {}).items())) for r in multi}
    if multi and len(shared) == 1 and all(r.config.get("baselines") for r in multi):
        values = [float((r.results or {}).get("delta_m", math.nan)) if r in multi else math.nan for r in runs]
        return values, "Δm% from each run's results.json (the runs share their single-task baselines)."
    singles = {r.tasks[0]: final_metrics(r)[r.tasks[0]] for r in runs if is_single_task(r)}
    if multi and singles and all(set(r.tasks) <= set(singles) for r in multi):
        values = [_delta_m_against(r, singles) if r in multi else math.nan for r in runs]
        return values, "Δm% against the single-task runs among the reported runs."
    return [math.nan] * len(runs), "No Δm%: the runs share no single-task baselines (config 'baselines') and none are reported."


def comparison_rows(runs: list[Run]) -> tuple[list[dict[str, Any]], str]:
    """One row per run: settings, per-task test metrics, Δm%, mean rank and conflict summary."""
    deltas, note = delta_ms(runs)
    multi = [r for r in runs if not is_single_task(r)]
    same_tasks = len({tuple(r.tasks) for r in multi}) == 1
    ranks = dict(zip(map(id, multi), mean_ranks(multi))) if same_tasks else {}
    rows = []
    for run, delta in zip(runs, deltas):
        series = gradient_series(run)
        rows.append({
            "run": run.label,
            "aggregator": run.config.get("aggregator", "?"),
            "mode": run.config.get("mode", "?"),
            "seed": run.config.get("seed", "?"),
            "steps": (run.results or {}).get("step", max((s for split in run.records.values() for s in split), default=0)),
            "test": final_metrics(run),
            "delta_m": delta,
            "mean_rank": ranks.get(id(run), math.nan),
            "mean_conflict_rate": mean_conflict_rate(run),
            "mean_cosine": mean_pairwise_cosine(series) if series is not None else math.nan,
        })
    return rows, note

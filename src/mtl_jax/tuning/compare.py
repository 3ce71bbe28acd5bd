"""``mtl-jax compare``: single-task baselines, then every method × seed, then one table.

For seed s in 0..S−1:

- a **single-task baseline** per task: the config with ``tasks=[task]``, EW (``sum``),
  full mode, the seed s, and the best-so-far metric of that task. Its run directory is
  ``<baselines dir>/<config name>-<task>-seed<s>-<hash of its config>``, so a later
  compare of the same base config (any methods) reuses it;
- a **method run** per method: the config with that aggregator (and mode), seed s, and
  ``baselines`` naming seed s's single-task runs, so the trainer writes Δm% (test split,
  :func:`mtl_jax.evaluation.delta_m`) into the run's ``results.json``.

Every number of the table is read back from the runs' ``results.json`` files
(:mod:`~mtl_jax.tuning.compare_table`). Methods are named ``aggregator`` or
``aggregator:mode``; the base config's ``aggregator_options`` go with the base method only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from mtl_jax.errors import ConfigError
from mtl_jax.tuning import runs
from mtl_jax.tuning.compare_table import build_table, write_chart, write_json, write_markdown
from mtl_jax.tuning.jobs import run_jobs


@dataclasses.dataclass(frozen=True)
class CompareRequest:
    """The ``mtl-jax compare`` arguments."""

    config: str
    methods: tuple[str, ...]
    seeds: int = 3
    workers: int = 1
    sets: tuple[str, ...] = ()
    workdir: str | None = None
    baselines_dir: str = "runs/baselines"


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


def parse_method(text: str, base: Mapping[str, Any]) -> tuple[str, str]:
    name, _, mode = text.partition(":")
    if not name:
        raise ConfigError(f"--methods {text!r}: expected an aggregator name, optionally name:mode (e.g. upgrad:representation)")
    return name, mode or base["mode"]


def method_config(base: Mapping[str, Any], name: str, mode: str, seed: int, baselines: Mapping[str, str]) -> dict[str, Any]:
    options = base["aggregator_options"] if name == base["aggregator"] else {}
    return {**base, "aggregator": name, "aggregator_options": dict(options), "mode": mode, "seed": seed, "baselines": dict(baselines)}


def baseline_metric(base: Mapping[str, Any], task: str, metrics: tuple[str, ...]) -> str:
    """The base config's best-so-far metric for ``task`` alone (else the task's first metric)."""
    metric = base["best_metric"].partition("/")[2]
    return f"{task}/{metric if metric in (*metrics, 'loss') else metrics[0]}"


def baseline_config(base: Mapping[str, Any], task: str, metrics: tuple[str, ...], seed: int) -> dict[str, Any]:
    return {
        **base, "tasks": [task], "aggregator": "sum", "aggregator_options": {}, "mode": "full", "seed": seed,
        "baselines": {}, "auxiliary_tasks": [], "best_metric": baseline_metric(base, task, metrics),
    }  # a single-task run has no auxiliary task


def _check(request: CompareRequest) -> None:
    for name, value in (("--seeds", request.seeds), ("--workers", request.workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not request.methods:
        raise ConfigError("--methods names no method; pass e.g. --methods pcgrad mgda")
    if len(set(request.methods)) != len(request.methods):
        raise ConfigError(f"--methods lists a method twice: {list(request.methods)}")


def run_compare(request: CompareRequest, echo: Callable[[str], None] = print) -> int:
    """The whole command; writes ``compare.json``, ``compare.md`` and ``compare.png`` in the
    compare directory (default ``runs/compare-<config name>``) and prints the markdown."""
    _check(request)
    lazy_here = request.workers > 1 and runs.parent_process_allocates_lazily()  # K processes train, not this one
    stem = Path(request.config).stem
    base = runs.resolved_config(request.config, request.sets)
    runs.check_run_config(base)
    methods = [parse_method(text, base) for text in request.methods]
    for text, (name, mode) in zip(request.methods, methods):  # every method and mode, before anything is trained
        try:
            runs.check_run_config(method_config(base, name, mode, 0, {}))
        except ConfigError as error:
            raise ConfigError(f"--methods {text!r}: {' '.join(str(error).split())}") from error
    metrics = runs.task_metrics(base)  # opens (and prepares) the data: after the cheap checks
    seeds = list(range(request.seeds))
    root = Path(request.workdir or Path("runs") / f"compare-{stem}")
    cache = Path(request.baselines_dir)

    baseline_jobs, baseline_dirs = [], {}
    for seed in seeds:
        for task, task_metrics in metrics.items():
            config = baseline_config(base, task, task_metrics, seed)
            run_dir = cache / f"{stem}-{task}-seed{seed}-{config_hash(config)}"
            baseline_jobs.append((config, run_dir))
            baseline_dirs[(task, seed)] = str(run_dir)
    echo(f"single-task baselines: {len(metrics)} tasks x {len(seeds)} seeds in {cache}")
    baseline_results = run_jobs(baseline_jobs, request.workers, echo, lazy_here)

    method_jobs, labels = [], []
    for name, mode in methods:
        for seed in seeds:
            config = method_config(base, name, mode, seed, {task: baseline_dirs[(task, seed)] for task in metrics})
            method_jobs.append((config, root / f"{name}-{mode}-seed{seed}-{config_hash(config)}"))
            labels.append((f"{name}:{mode}" if mode != "full" else name, seed))
    echo(f"methods: {len(methods)} x {len(seeds)} seeds in {root}")
    method_results = run_jobs(method_jobs, request.workers, echo, lazy_here)

    table = build_table(
        config=request.config, split=base["test_split"], metrics=metrics, seeds=seeds,
        baselines=[(task, seed, results, str(run_dir)) for ((config, run_dir), results), (task, seed) in
                   zip(zip(baseline_jobs, baseline_results), [(t, s) for s in seeds for t in metrics])],
        methods=[(label, seed, results, str(run_dir)) for ((config, run_dir), results), (label, seed) in
                 zip(zip(method_jobs, method_results), labels)],
        higher_is_better=runs.metric_direction,
    )
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "compare.json", table)
    markdown = write_markdown(root / "compare.md", table)
    chart = write_chart(root / "compare.png", table)
    echo(markdown)
    echo(f"written: {root / 'compare.json'}, {root / 'compare.md'}" + (f", {chart}" if chart else " (no chart: matplotlib is not installed)"))
    return 0

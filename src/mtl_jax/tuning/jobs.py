"""Training many run configs: in this process, or in K worker processes.

A job is (config, run directory). A run directory that already holds this config's
``results.json`` is reused as it is (the cache); one with the config but no results is
resumed from its checkpoint; a fresh one is trained. With ``workers > 1`` the jobs go to a
pool of K spawned processes (each imports JAX once and trains its jobs one after the
other); on one accelerator the K processes share its memory (``XLA_PYTHON_CLIENT_MEM_FRACTION``
= 0.9 / K unless set) and the parent allocates lazily (:func:`mtl_jax.tuning.runs.parent_process_allocates_lazily`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

RESULTS, CONFIG = "results.json", "config.json"

Job = tuple[Mapping[str, Any], Path]


def cached_results(config: Mapping[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The results of a finished run of exactly ``config`` in ``run_dir``, else None."""
    from mtl_jax.tuning.runs import normalised  # noqa: PLC0415

    try:
        saved = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
        results = json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if saved == normalised(config) else None


def train_job(config: Mapping[str, Any], run_dir: str) -> dict[str, Any]:
    """Train one job (also the pool workers' entry point)."""
    from mtl_jax.tuning.runs import train_run  # noqa: PLC0415

    results = train_run(config, run_dir)
    if results.get("preempted"):
        raise RuntimeError(f"the run in {run_dir} was stopped at step {results['step']}; run the command again to resume it")
    return results


@contextlib.contextmanager
def _children_env(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` while the pool spawns its processes (they copy it)."""
    previous = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(previous)


def run_jobs(jobs: Sequence[Job], workers: int = 1, echo: Callable[[str], None] = print,
             lazy_here: bool = False) -> list[dict[str, Any]]:
    """The results of every job, in order; cached ones are not trained again."""
    results: list[dict[str, Any] | None] = [cached_results(config, run_dir) for config, run_dir in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    echo(f"{len(jobs) - len(todo)} of {len(jobs)} runs cached; training {len(todo)}" + (f" in {workers} processes" if workers > 1 and todo else ""))
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            config, run_dir = jobs[i]
            results[i] = train_job(config, str(run_dir))
            echo(f"  done: {run_dir}")
        return results  # type: ignore[return-value]
    from mtl_jax.tuning.runs import children_env  # noqa: PLC0415

    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        with _children_env(children_env(lazy_here, workers)):
            futures = {pool.submit(train_job, dict(jobs[i][0]), str(jobs[i][1])): i for i in todo}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            echo(f"  done: {jobs[futures[future]][1]}")
    return results  # type: ignore[return-value]

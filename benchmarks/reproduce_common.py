"""Shared parts of the reproduction scripts: run a config once, record it, summarise seeds.

Every script trains with ``mtl_jax.training.loop.train`` in run directories under
``--workdir`` (a finished run is skipped, so an interrupted sweep continues where it
stopped) and appends one JSON line per run to its results file, with the device, the wall
and CPU seconds of the run. Intervals are two-sided 95 % Student-t intervals over seeds.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_once(config: dict, workdir: Path) -> tuple[dict, float, float] | None:
    """(results, wall s, CPU s) of a fresh run in ``workdir``; None if it already finished there."""
    from mtl_jax.training.loop import train  # noqa: PLC0415 - imports JAX

    if (workdir / "results.json").exists():
        return None
    wall, cpu = time.perf_counter(), cpu_seconds()
    results = train(config, workdir=workdir, progress=False)
    if results.get("preempted"):  # SIGTERM: the checkpoint is saved; the same command resumes
        raise SystemExit(f"stopped by SIGTERM at step {results['step']} in {workdir}; run the same command to resume")
    return results, time.perf_counter() - wall, cpu_seconds() - cpu


def device() -> str:
    import jax  # noqa: PLC0415

    return f"{jax.device_count()} x {jax.devices()[0].device_kind}"


def recorder(out: str):
    """A function appending one JSON line (with device, host, jax version) to ``out``."""
    import jax  # noqa: PLC0415

    Path(out).parent.mkdir(parents=True, exist_ok=True)

    def record(row: dict) -> None:
        row.update({"device": device(), "host": platform.node(), "jax": jax.__version__})
        print(json.dumps(row), flush=True)
        with open(out, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(row) + "\n")

    return record


def read_rows(path: str) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    try:
        from scipy import stats  # noqa: PLC0415

        return float(stats.t.ppf(0.975, df))
    except ImportError:  # the table for the small df of a few seeds
        return {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}.get(df, 1.96)


def mean_interval(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, 95 % half-width, n); half-width NaN for one value."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    n = values.size
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(values[0]), math.nan, 1
    return float(values.mean()), t_quantile(n - 1) * float(values.std(ddof=1)) / math.sqrt(n), n


def fmt_interval(values: Iterable[float], scale: float = 1.0, digits: int = 2) -> str:
    mean, half, n = mean_interval(values)
    if n == 0:
        return "–"
    if n == 1:
        return f"{scale * mean:.{digits}f} (1 seed)"
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


def pearson_interval(x: Iterable[float], y: Iterable[float]) -> tuple[float, float, float, int]:
    """(r, low, high, n): Pearson's r with its 95 % Fisher-z interval."""
    x, y = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = x.size
    if n < 3 or x.std() == 0 or y.std() == 0:
        return math.nan, math.nan, math.nan, n
    r = float(np.corrcoef(x, y)[0, 1])
    if n == 3 or abs(r) >= 1:
        return r, math.nan, math.nan, n
    z, se = math.atanh(r), 1.0 / math.sqrt(n - 3)
    return r, math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se), n


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    x, y = np.asarray(list(x), np.float64), np.asarray(list(y), np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return math.nan
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731 - ties are rare here
    return float(np.corrcoef(rank(x[keep]), rank(y[keep]))[0, 1])

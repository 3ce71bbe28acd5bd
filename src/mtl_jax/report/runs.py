"""A finished (or running) training run as the report reads it: config, metric records, results.

``metrics.jsonl`` holds one JSON object per line, ``{"step", "split", name: value, ...}``
(``mtl_jax.training.logging_sinks``); a resumed run may log a step twice, and the last
record of a (split, step) wins. Non-finite values are logged as the strings "nan"/"inf".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtl_jax.errors import ConfigError, DataError

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"
TRAIN = "train"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return None


@dataclass(frozen=True)
class Run:
    """One run directory: its resolved config, its records by split and its results."""

    path: Path
    config: dict[str, Any]
    records: dict[str, dict[int, dict[str, float]]]  # split -> step -> {name: value}
    results: dict[str, Any] | None
    label: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        """Task names in the order of the config, or of the logged ``loss/<task>`` keys."""
        if self.config.get("tasks"):
            return list(self.config["tasks"])
        if self.results and isinstance(self.results.get("test"), dict):
            return list(self.results["test"])
        names = (k.split("/", 1)[1] for _, r in sorted(self.records.get(TRAIN, {}).items()) for k in r if k.startswith("loss/"))
        return list(dict.fromkeys(names))  # the step's order: the logger writes tasks in model order

    @property
    def eval_split(self) -> str:
        return str(self.config.get("eval_split", "validation"))

    def steps(self, split: str, name: str) -> np.ndarray:
        return self.series(split, name)[0]

    def series(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``name`` in ``split``, sorted by step (records lacking it skipped)."""
        by_step = self.records.get(split, {})
        pairs = [(s, r[name]) for s, r in sorted(by_step.items()) if name in r]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0)
        steps, values = zip(*pairs)
        return np.asarray(steps, np.int64), np.asarray(values, np.float64)

    def names(self, split: str) -> list[str]:
        """Every metric name logged in ``split``, first-seen order."""
        seen: dict[str, None] = {}
        for record in self.records.get(split, {}).values():
            seen.update(dict.fromkeys(record))
        return list(seen)


def parse_records(lines: list[str], path: Path) -> dict[str, dict[int, dict[str, float]]]:
    """``{split: {step: {name: value}}}`` from metrics.jsonl lines; numeric values only."""
    records: dict[str, dict[int, dict[str, float]]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step, split = int(record["step"]), str(record["split"])
        except (ValueError, KeyError, TypeError) as error:
            if number == len(lines):  # a last line cut short by a crash: ignore it
                continue
            raise DataError(
                f"{path} line {number} is not a metrics record ({type(error).__name__}); "
                "pass the run directory of `mtl-jax train`, or delete the damaged line"
            ) from error
        values = {k: v for k, v in ((k, _number(v)) for k, v in record.items() if k not in ("step", "split")) if v is not None}
        records.setdefault(split, {})[step] = values
    return records


def read_run(path: str | Path, label: str | None = None) -> Run:
    """Read a run directory; ConfigError when it is not one (no metrics.jsonl)."""
    path = Path(path)
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        raise ConfigError(
            f"run {str(path)!r} has no {METRICS_FILE}; pass run directories made by `mtl-jax train` (its --workdir)"
        )
    records = parse_records(metrics.read_text(encoding="utf-8").splitlines(), metrics)
    config: dict[str, Any] = {}
    notes: list[str] = []
    if (path / CONFIG_FILE).is_file():
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    else:
        notes.append(f"no {CONFIG_FILE}: aggregator and settings unknown")
    results = None
    if (path / RESULTS_FILE).is_file():
        results = json.loads((path / RESULTS_FILE).read_text(encoding="utf-8"))
    else:
        notes.append(f"no {RESULTS_FILE}: the run has not finished, so there are no final test metrics")
    default = f"{config.get('aggregator', '?')} · {path.name}"
    return Run(path=path, config=config, records=records, results=results, label=label or default, notes=notes)


def read_runs(paths: list[str | Path]) -> list[Run]:
    """Read several runs; labels made unique (``aggregator · dir``, then the full path)."""
    runs = [read_run(p) for p in paths]
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        runs = [read_run(r.path, label=str(r.path)) for r in runs]
    return runs


def finite_mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if values.size else math.nan

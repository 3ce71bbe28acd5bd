"""Best-so-far tracking of one validation metric, named ``<task>/<metric>`` or ``mean/<metric>``."""

from __future__ import annotations

import dataclasses
from typing import Mapping

from mtl_jax.evaluation.directions import higher_is_better


def select_metric(results: Mapping[str, Mapping[str, float]], name: str) -> float:
    """The value of ``name`` in per-task ``results``; ``mean/<m>`` averages ``m`` over the
    tasks that report it."""
    task, _, metric = name.partition("/")
    if task == "mean":
        values = [named[metric] for named in results.values() if metric in named]
        if not values:
            raise KeyError(f"no task reports {metric!r}")
        return sum(values) / len(values)
    return results[task][metric]


@dataclasses.dataclass
class BestTracker:
    """Remembers the best value of ``metric`` seen so far and the step it came from."""

    metric: str
    value: float | None = None
    step: int | None = None

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric.partition("/")[2])

    def score(self, value: float) -> float:
        """The value signed so that larger is always better (Orbax keeps the largest)."""
        return value if self.higher_is_better else -value

    def update(self, results: Mapping[str, Mapping[str, float]], step: int) -> bool:
        """Record ``results`` of ``step``; True when they are the best so far."""
        value = select_metric(results, self.metric)
        if self.value is None or self.score(value) > self.score(self.value):
            self.value, self.step = value, step
            return True
        return False

    def to_json(self) -> dict:
        return {"metric": self.metric, "value": self.value, "step": self.step}

    @classmethod
    def from_json(cls, saved: Mapping) -> "BestTracker":
        return cls(saved["metric"], saved.get("value"), saved.get("step"))

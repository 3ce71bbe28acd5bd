"""Best-so-far tracking of one validation metric, named ``<task>/<metric>`` or ``mean/<metric>``.

``mean/<metric>`` is the unweighted mean of ``<metric>`` over the tasks that report it,
auxiliary tasks excluded (``exclude``; :mod:`mtl_jax.training.auxiliary`)."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from mtl_jax.evaluation.directions import higher_is_better


def select_metric(results: Mapping[str, Mapping[str, float]], name: str, exclude: Sequence[str] = ()) -> float:
    """The value of ``name`` in per-task ``results``; ``mean/<m>`` averages ``m`` over the
    tasks that report it, leaving out the tasks of ``exclude`` (auxiliary tasks)."""
    task, _, metric = name.partition("/")
    if task == "mean":
        left_out = set(exclude)
        values = [named[metric] for t, named in results.items() if metric in named and t not in left_out]
        if not values:
            raise KeyError(f"no task reports {metric!r}")
        return sum(values) / len(values)
    return results[task][metric]


@dataclasses.dataclass
class BestTracker:
    """Remembers the best value of ``metric`` seen so far and the step it came from;
    ``exclude``: tasks left out of a ``mean/<metric>`` (auxiliary tasks, not saved in JSON)."""

    metric: str
    value: float | None = None
    step: int | None = None
    exclude: tuple[str, ...] = ()

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric.partition("/")[2])

    def score(self, value: float) -> float:
        """The value signed so that larger is always better (Orbax keeps the largest)."""
        return value if self.higher_is_better else -value

    def update(self, results: Mapping[str, Mapping[str, float]], step: int) -> bool:
        """Record ``results`` of ``step``; True when they are the best so far."""
        value = self.select(results)
        if self.value is None or self.score(value) > self.score(self.value):
            self.value, self.step = value, step
            return True
        return False

    def select(self, results: Mapping[str, Mapping[str, float]]) -> float:
        """The tracked metric's value in ``results``."""
        return select_metric(results, self.metric, self.exclude)

    def to_json(self) -> dict:
        return {"metric": self.metric, "value": self.value, "step": self.step}

    @classmethod
    def from_json(cls, saved: Mapping, exclude: Sequence[str] = ()) -> "BestTracker":
        return cls(saved["metric"], saved.get("value"), saved.get("step"), tuple(exclude))

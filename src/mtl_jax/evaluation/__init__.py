"""Evaluation: per-task metrics chosen by the task's kind, Δm% against baselines, best-so-far.

Every metric is accumulated as summable sufficient statistics on the device (a confusion
matrix, per-label counts, sums of absolute errors), summed over batches and devices, and
turned into numbers once on the host.
"""

from mtl_jax.evaluation.best import BestTracker
from mtl_jax.evaluation.delta_m import delta_m
from mtl_jax.evaluation.directions import higher_is_better
from mtl_jax.evaluation.evaluator import evaluate, make_evaluator
from mtl_jax.evaluation.task_metrics import finalize, task_statistics

__all__ = [
    "BestTracker",
    "delta_m",
    "evaluate",
    "finalize",
    "higher_is_better",
    "make_evaluator",
    "task_statistics",
]

"""Per-task metrics chosen by the task's kind (``mtl_jax.data.spec.TaskSpec``).

Head outputs: classification (B, C) logits, tagging (B, L, C) logits, multilabel (B, K)
logits, regression (B,) normalised predictions. ``task_statistics`` returns summable
integer/float statistics (computed on the device, summed over batches and devices);
``finalize`` turns their sums into metrics on the host:

* classification, tagging: ``accuracy`` and ``macro_f1`` from the confusion matrix;
* multilabel: ``macro_f1`` and ``f1/<label>`` per label;
* regression: ``mae`` in the original units.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from mtl_jax.data.spec import TaskSpec
from mtl_jax.evaluation import confusion, multilabel, regression

METRICS_BY_KIND: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "tagging": ("accuracy", "macro_f1"),
    "multilabel": ("macro_f1",),
    "regression": ("mae",),
}


def task_statistics(spec: TaskSpec, outputs: jax.Array, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Summable statistics of one batch for the task ``spec``."""
    labels = batch[spec.label_key]
    mask = batch.get(spec.mask_key)
    if spec.kind in ("classification", "tagging"):
        return {"confusion": confusion.confusion_matrix(outputs, labels, mask)}
    if spec.kind == "multilabel":
        return {"label_counts": multilabel.label_counts(outputs, labels, mask)}
    return {"absolute_error": regression.absolute_error_sum(outputs, labels, mask, spec.target_std)}


def label_names(spec: TaskSpec) -> tuple[str, ...]:
    """The names used in ``f1/<label>`` keys: the spec's class names, else indices."""
    if len(spec.class_names) == spec.num_outputs:
        return spec.class_names
    return tuple(str(k) for k in range(spec.num_outputs))


def finalize(spec: TaskSpec, stats: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Metrics of the task from the statistics summed over a whole split."""
    if spec.kind in ("classification", "tagging"):
        matrix = np.asarray(stats["confusion"], np.int64)
        return {"accuracy": confusion.accuracy(matrix), "macro_f1": confusion.macro_f1(matrix)}
    if spec.kind == "multilabel":
        f1 = multilabel.per_label_f1(stats["label_counts"])
        named = {f"f1/{name}": float(value) for name, value in zip(label_names(spec), f1)}
        return {"macro_f1": float(f1.mean()), **named}
    total, count = np.asarray(stats["absolute_error"], np.float64)
    return {"mae": float(total / count) if count else 0.0}

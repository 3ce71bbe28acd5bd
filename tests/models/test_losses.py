"""Losses and metrics against float64 NumPy references written from their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_jax.data.spec import TaskSpec
from mtl_jax.models.task_kinds import task_from_spec


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def smoothed_cross_entropy(logits, labels, weights, eps):
    """Σ_w -Σ_c [(1-ε) onehot + ε/C]_c log softmax(logits)_c  (Szegedy et al. 2016, §7)."""
    classes = logits.shape[-1]
    targets = (1 - eps) * np.eye(classes)[labels] + eps / classes
    per = -(targets * log_softmax(logits)).sum(-1)
    return (per * weights).sum(), weights.sum()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_tagging_cross_entropy_counts_only_unmasked_tokens(eps, rng):
    task = task_from_spec(TaskSpec("pos", "tagging", 6), label_smoothing=eps)
    logits = rng.standard_normal((4, 9, 6)).astype(np.float32)
    labels = rng.integers(0, 6, (4, 9)).astype(np.int32)
    mask = rng.random((4, 9)) < 0.6
    total, count = task.loss(logits, {"pos": labels, "pos_mask": mask})
    ref_total, ref_count = smoothed_cross_entropy(logits.astype(np.float64), labels, mask.astype(np.float64), eps)
    np.testing.assert_allclose(float(total), ref_total, rtol=1e-5)
    assert float(count) == ref_count


def test_classification_cross_entropy_with_smoothing(rng):
    task = task_from_spec(TaskSpec("kind", "classification", 5), label_smoothing=0.2)
    logits = rng.standard_normal((7, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 7).astype(np.int32)
    mask = rng.random(7) < 0.7
    total, count = task.loss(logits, {"kind": labels, "kind_mask": mask})
    ref_total, ref_count = smoothed_cross_entropy(logits.astype(np.float64), labels, mask.astype(np.float64), 0.2)
    np.testing.assert_allclose(float(total), ref_total, rtol=1e-5)
    assert float(count) == ref_count


def test_multilabel_binary_cross_entropy(rng):
    task = task_from_spec(TaskSpec("tags", "multilabel", 4))
    logits = rng.standard_normal((6, 4)).astype(np.float32) * 3
    labels = (rng.random((6, 4)) < 0.5).astype(np.float32)
    mask = rng.random(6) < 0.7
    total, count = task.loss(logits, {"tags": labels, "tags_mask": mask})
    x = logits.astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(-1)
    np.testing.assert_allclose(float(total), (bce * mask).sum(), rtol=1e-5)
    assert float(count) == mask.sum()
    hits, pairs = task.metrics["label_accuracy"](logits, {"tags": labels, "tags_mask": mask})
    ref_hits = (((x > 0) == (labels > 0.5)) * mask[:, None]).sum()
    assert float(hits) == ref_hits and float(pairs) == 4 * mask.sum()


@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_regression_loss_and_mae_in_original_units(kind, rng):
    spec = TaskSpec("gap", "regression", 1, target_mean=5.0, target_std=2.5)
    task = task_from_spec(spec, regression_loss_kind=kind)
    prediction = rng.standard_normal(8).astype(np.float32)
    target = rng.standard_normal(8).astype(np.float32)
    mask = rng.random(8) < 0.7
    batch = {"gap": target, "gap_mask": mask}
    total, count = task.loss(prediction, batch)
    error = prediction.astype(np.float64) - target
    per = error**2 if kind == "mse" else np.abs(error)
    np.testing.assert_allclose(float(total), (per * mask).sum(), rtol=1e-5)
    assert float(count) == mask.sum()
    mae_total, mae_count = task.metrics["mae"](prediction, batch)
    original = lambda v: v * 2.5 + 5.0  # noqa: E731
    ref = (np.abs(original(prediction.astype(np.float64)) - original(target.astype(np.float64))) * mask).sum()
    np.testing.assert_allclose(float(mae_total), ref, rtol=1e-5)
    assert float(mae_count) == mask.sum()

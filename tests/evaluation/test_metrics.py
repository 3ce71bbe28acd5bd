"""Every evaluation metric against a float64 NumPy reference written from its definition."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.data.spec import TaskSpec
from mtl_jax.evaluation import BestTracker, delta_m, finalize, task_statistics
from mtl_jax.evaluation.best import select_metric


def reference_f1(true: np.ndarray, predicted: np.ndarray, positive) -> float:
    """F1 = 2·precision·recall / (precision + recall) counted item by item; 0 if undefined."""
    tp = fp = fn = 0
    for t, p in zip(true, predicted):
        tp += int(t == positive and p == positive)
        fp += int(t != positive and p == positive)
        fn += int(t == positive and p != positive)
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


def reference_single_label(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    predicted = np.argmax(logits, axis=-1).reshape(-1)[mask.reshape(-1)]
    true = labels.reshape(-1)[mask.reshape(-1)]
    classes = sorted(set(true.tolist()) | set(predicted.tolist()))
    return {
        "accuracy": float(np.mean(predicted == true)),
        "macro_f1": float(np.mean([reference_f1(true, predicted, c) for c in classes])),
    }


def split_into_batches(arrays: dict, batch_size: int):
    size = len(next(iter(arrays.values())))
    return [{k: v[i : i + batch_size] for k, v in arrays.items()} for i in range(0, size, batch_size)]


def summed_statistics(spec: TaskSpec, outputs: np.ndarray, arrays: dict, batch_size: int) -> dict:
    totals = None
    for start in range(0, len(outputs), batch_size):
        batch = {k: jnp.asarray(v[start : start + batch_size]) for k, v in arrays.items()}
        stats = task_statistics(spec, jnp.asarray(outputs[start : start + batch_size]), batch)
        stats = {k: np.asarray(v, np.float64) for k, v in stats.items()}
        totals = stats if totals is None else {k: totals[k] + stats[k] for k in totals}
    return totals


@pytest.mark.parametrize("num_classes", [2, 5, 17])
def test_classification_accuracy_and_macro_f1(rng, num_classes):
    size = 203
    logits = rng.standard_normal((size, num_classes)).astype(np.float32)
    labels = rng.integers(0, num_classes, size).astype(np.int32)
    mask = rng.random(size) < 0.8
    spec = TaskSpec("t", "classification", num_classes)
    stats = summed_statistics(spec, logits, {"t": labels, "t_mask": mask}, batch_size=32)
    got = finalize(spec, stats)
    want = reference_single_label(logits, labels, mask)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_tagging_excludes_padding_tokens(rng):
    batch_size, length, num_classes = 37, 11, 6
    logits = rng.standard_normal((batch_size, length, num_classes)).astype(np.float32)
    labels = rng.integers(0, num_classes, (batch_size, length)).astype(np.int32)
    lengths = rng.integers(1, length + 1, batch_size)
    mask = np.arange(length)[None, :] < lengths[:, None]
    labels_with_junk_padding = np.where(mask, labels, rng.integers(0, num_classes, labels.shape))
    spec = TaskSpec("pos", "tagging", num_classes)
    stats = summed_statistics(spec, logits, {"pos": labels_with_junk_padding, "pos_mask": mask}, batch_size=8)
    assert stats["confusion"].sum() == mask.sum()
    assert finalize(spec, stats) == pytest.approx(reference_single_label(logits, labels, mask), rel=1e-12)


def test_macro_f1_ignores_classes_never_seen_nor_predicted(rng):
    logits = rng.standard_normal((50, 8)).astype(np.float32)
    logits[:, 5:] = -100.0  # classes 5..7 never predicted
    labels = rng.integers(0, 5, 50).astype(np.int32)  # nor true
    spec = TaskSpec("t", "classification", 8)
    stats = summed_statistics(spec, logits, {"t": labels}, batch_size=50)
    assert finalize(spec, stats)["macro_f1"] == pytest.approx(
        reference_single_label(logits, labels, np.ones(50, bool))["macro_f1"], rel=1e-12
    )


def test_multilabel_per_label_and_macro_f1(rng):
    size, num_labels = 157, 7
    logits = rng.standard_normal((size, num_labels)).astype(np.float32)
    targets = (rng.random((size, num_labels)) < 0.3).astype(np.float32)
    mask = rng.random(size) < 0.85
    spec = TaskSpec("emotions", "multilabel", num_labels, class_names=tuple("abcdefg"))
    got = finalize(spec, summed_statistics(spec, logits, {"emotions": targets, "emotions_mask": mask}, 20))
    predicted, truth = (logits[mask] > 0).astype(int), targets[mask].astype(int)
    per_label = [reference_f1(truth[:, k], predicted[:, k], 1) for k in range(num_labels)]
    for name, value in zip("abcdefg", per_label):
        assert got[f"f1/{name}"] == pytest.approx(value, rel=1e-12, abs=1e-15)
    assert got["macro_f1"] == pytest.approx(np.mean(per_label), rel=1e-12)


def test_regression_mae_in_original_units(rng):
    size = 91
    mean, std = float(rng.normal() * 10), float(rng.uniform(0.5, 4.0))
    predictions = rng.standard_normal(size).astype(np.float32)
    targets = rng.standard_normal(size).astype(np.float32)
    mask = rng.random(size) < 0.7
    spec = TaskSpec("gap", "regression", 1, target_mean=mean, target_std=std)
    got = finalize(spec, summed_statistics(spec, predictions, {"gap": targets, "gap_mask": mask}, 16))
    original_predictions = predictions.astype(np.float64) * std + mean
    original_targets = targets.astype(np.float64) * std + mean
    want = np.mean(np.abs(original_predictions - original_targets)[mask])
    assert got["mae"] == pytest.approx(want, rel=1e-5)


def test_delta_m_matches_its_definition(rng):
    model = {"a": {"accuracy": rng.uniform(0.5, 1)}, "b": {"mae": rng.uniform(1, 5)}, "c": {"accuracy": 0.7}}
    base = {"a": {"accuracy": rng.uniform(0.5, 1)}, "b": {"mae": rng.uniform(1, 5)}}
    got = delta_m(model, base, {"a": ("accuracy",), "b": ("mae",), "c": ("accuracy",)})
    change_a = -(model["a"]["accuracy"] - base["a"]["accuracy"]) / base["a"]["accuracy"]  # higher is better
    change_b = +(model["b"]["mae"] - base["b"]["mae"]) / base["b"]["mae"]  # lower is better
    assert got == pytest.approx(100 * (change_a + change_b) / 2, rel=1e-12)


def test_delta_m_is_negative_when_every_task_improves(rng):
    base = {"a": {"accuracy": 0.6}, "b": {"mae": 2.0}}
    better = {"a": {"accuracy": 0.6 + rng.uniform(0.01, 0.3)}, "b": {"mae": 2.0 - rng.uniform(0.01, 1)}}
    assert delta_m(better, base, {"a": ("accuracy",), "b": ("mae",)}) < 0


def test_best_tracker_follows_the_metric_direction(rng):
    values = rng.uniform(0, 1, 12)
    for metric, pick in (("mean/accuracy", np.argmax), ("left/loss", np.argmin)):
        tracker = BestTracker(metric)
        for step, value in enumerate(values):
            tracker.update({"left": {"accuracy": value, "loss": value}, "right": {"accuracy": value}}, step)
        assert tracker.step == pick(values) and tracker.value == values[pick(values)]


def test_select_metric_mean_averages_tasks(rng):
    a, b = rng.uniform(0, 1, 2)
    assert select_metric({"x": {"accuracy": a}, "y": {"accuracy": b}}, "mean/accuracy") == pytest.approx((a + b) / 2)

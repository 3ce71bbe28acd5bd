"""Head outputs → JSON predictions, by task kind.

:func:`batch_scores` turns a batch of head outputs into probabilities or values at once
(vectorised, in the model thread); :func:`task_prediction` turns one example's row of them
into its JSON:

* tagging: ``{"tags": [...], "probabilities": [...]}``, one per token (argmax of the
  token's softmax);
* classification: ``{"label", "probability", "top_k": [{"label", "probability"}, ...]}``
  (softmax of the logits; ``top_k`` the ``k`` most probable classes);
* multilabel: ``{"labels": [names with sigmoid ≥ threshold], "probabilities": {name: p}}``;
* regression: ``{"value": output · target_std + target_mean, "units": ...}`` (the
  original units of the training targets).

Label names are the artifact's (class indices as strings where a task has none).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def label_names(task: Mapping[str, Any]) -> list[str]:
    names = list(task.get("labels") or [])
    return names if len(names) == task["num_outputs"] else [str(k) for k in range(task["num_outputs"])]


def batch_scores(task: Mapping[str, Any], outputs: np.ndarray) -> np.ndarray:
    """Scores of a whole batch, vectorised: class probabilities (softmax) for classification
    and tagging, label probabilities (sigmoid) for multilabel, values in the original units
    for regression."""
    kind = task["kind"]
    if kind in ("classification", "tagging"):
        return softmax(outputs)
    if kind == "multilabel":
        return sigmoid(outputs)
    return np.asarray(outputs, np.float64) * float(task.get("target_std", 1.0)) + float(task.get("target_mean", 0.0))


def tagging(task: Mapping[str, Any], probabilities: np.ndarray) -> dict[str, Any]:
    """``probabilities`` (L, C) of the example's real tokens."""
    names = label_names(task)
    best = np.argmax(probabilities, axis=-1)
    chosen = probabilities[np.arange(len(best)), best]
    return {"tags": [names[k] for k in best.tolist()], "probabilities": np.round(chosen, 6).tolist()}


def classification(task: Mapping[str, Any], probabilities: np.ndarray, top_k: int) -> dict[str, Any]:
    names = label_names(task)
    best = int(np.argmax(probabilities))
    order = [best] if top_k == 1 else np.argsort(-probabilities, kind="stable")[:top_k].tolist()
    rounded = np.round(probabilities, 6).tolist()
    ranked = [{"label": names[k], "probability": rounded[k]} for k in order]
    return {"label": names[best], "probability": rounded[best], "top_k": ranked}


def multilabel(task: Mapping[str, Any], probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    names = label_names(task)
    rounded = np.round(probabilities, 6).tolist()
    return {
        "labels": [name for name, p in zip(names, probabilities.tolist()) if p >= threshold],
        "probabilities": dict(zip(names, rounded)),
    }


def task_prediction(task: Mapping[str, Any], scores: np.ndarray, *, top_k: int = 1, threshold: float = 0.5) -> dict[str, Any]:
    """The JSON prediction of one task for one example from its :func:`batch_scores` row."""
    kind = task["kind"]
    if kind == "tagging":
        return tagging(task, scores)
    if kind == "classification":
        return classification(task, scores, top_k)
    if kind == "multilabel":
        return multilabel(task, scores, threshold)
    return {"value": float(scores), "units": task.get("units", "")}

"""Gradient-conflict quantities from the logged step metrics of one run.

The step logs, each ``log_every`` steps, the task gradient norms ‖g_t‖ (``grad_norm/<t>``),
the upper triangle of the cosine matrix (``grad_cosine/<a>~<b>``), the conflicting-pair
fraction (``conflict_fraction``) and the aggregator's weights (``weight/<t>``). That is
enough to rebuild the Gramian G_ij = cos_ij ‖g_i‖ ‖g_j‖ and, from it:

- gradient magnitude similarity (Yu et al. 2020, "Gradient Surgery", Sec. 2.1):
  GMS(g_i, g_j) = 2 ‖g_i‖ ‖g_j‖ / (‖g_i‖² + ‖g_j‖²) ∈ [0, 1];
- the cosine between the update d = Jᵀw and the mean gradient ḡ = Jᵀ1/T:
  cos(d, ḡ) = wᵀG1 / sqrt(wᵀGw · 1ᵀG1). It is exact when the step's update is Jᵀw
  (Gramian-level and loss-level methods); Jacobian-level methods (``combine``: GradDrop,
  TrimmedMean, MoCo, …) form d otherwise, so it is not drawn for them. In representation
  mode every quantity is measured on the shared representation, not the parameters.

Per-layer statistics, when the step logs them (``gradient_stats: "per_layer"``), use the
names of :func:`mtl_jax.surgery.gradient_stats.layer_scalars`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtl_jax.report.runs import TRAIN, Run

LAYER_COSINE = "layer_grad_cosine/"
LAYER_NORM = "layer_grad_norm/"
LAYER_CONFLICT = "layer_conflict_fraction/"


def pair_names(tasks: list[str]) -> list[tuple[int, int, str]]:
    return [(i, j, f"{a}~{tasks[j]}") for i, a in enumerate(tasks) for j in range(i + 1, len(tasks))]


def pair_key(record: dict, prefix: str, a: str, b: str) -> str:
    """The logged name of pair (a, b): ``<prefix>a~b``, or ``<prefix>b~a`` if logged that way."""
    name = f"{prefix}{a}~{b}"
    return name if name in record else f"{prefix}{b}~{a}"


def has_gradient_stats(run: Run) -> bool:
    return any("conflict_fraction" in r for r in run.records.get(TRAIN, {}).values())


@dataclass(frozen=True)
class GradientSeries:
    """Per logged train step (rows) the gradient statistics of one run."""

    steps: np.ndarray  # (S,)
    norms: np.ndarray  # (S, T)
    cosines: np.ndarray  # (S, T, T), unit diagonal
    conflict: np.ndarray  # (S,) as logged
    weights: np.ndarray | None  # (S, T), None when not logged

    @property
    def gramians(self) -> np.ndarray:
        return self.cosines * self.norms[:, :, None] * self.norms[:, None, :]


def gradient_series(run: Run) -> GradientSeries | None:
    """The run's gradient statistics, or None when the step logged none."""
    tasks = run.tasks
    pairs = [(tasks[i], tasks[j]) for i, j, _ in pair_names(tasks)]
    keys = ["conflict_fraction", *(f"grad_norm/{t}" for t in tasks)]
    rows = [(s, r) for s, r in sorted(run.records.get(TRAIN, {}).items())
            if all(k in r for k in keys) and all(pair_key(r, "grad_cosine/", a, b) in r for a, b in pairs)]
    if not rows:
        return None
    steps = np.array([s for s, _ in rows])
    norms = np.array([[r[f"grad_norm/{t}"] for t in tasks] for _, r in rows])
    cosines = np.tile(np.eye(len(tasks)), (len(rows), 1, 1))
    for i, j, name in pair_names(tasks):
        cosines[:, i, j] = cosines[:, j, i] = [r[pair_key(r, "grad_cosine/", tasks[i], tasks[j])] for _, r in rows]
    conflict = np.array([r["conflict_fraction"] for _, r in rows])
    weight_keys = [f"weight/{t}" for t in tasks]
    weights = None
    if all(all(k in r for k in weight_keys) for _, r in rows):
        weights = np.array([[r[k] for k in weight_keys] for _, r in rows])
    return GradientSeries(steps, norms, cosines, conflict, weights)


def mean_conflict_rate(run: Run) -> float:
    """Mean over the logged train records of ``conflict_fraction``."""
    values = np.array([r["conflict_fraction"] for r in run.records.get(TRAIN, {}).values() if "conflict_fraction" in r])
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def mean_pairwise_cosine(series: GradientSeries) -> float:
    """Mean over steps and task pairs of cos(g_i, g_j) (NaN for one task)."""
    t = series.cosines.shape[1]
    if t < 2:
        return math.nan
    upper = np.triu_indices(t, k=1)
    return float(np.nanmean(series.cosines[:, upper[0], upper[1]]))


def magnitude_similarity(norms: np.ndarray) -> np.ndarray:
    """GMS_ij = 2 ‖g_i‖‖g_j‖ / (‖g_i‖² + ‖g_j‖²) over the last axis pair; 1 where both are 0."""
    a, b = norms[..., :, None], norms[..., None, :]
    denominator = a**2 + b**2
    return np.where(denominator > 0, 2 * a * b / np.where(denominator > 0, denominator, 1.0), 1.0)


def norm_ratios(norms: np.ndarray) -> np.ndarray:
    """‖g_t‖ / mean_s ‖g_s‖ per step, (S, T); NaN where every norm is 0."""
    mean = norms.mean(axis=-1, keepdims=True)
    return np.where(mean > 0, norms / np.where(mean > 0, mean, 1.0), np.nan)


def update_mean_cosine(gramians: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """cos(Jᵀw, Jᵀ1) = wᵀG1 / sqrt(wᵀGw · 1ᵀG1) per step, (S,); NaN where a norm is 0."""
    ones = np.ones(gramians.shape[-1])
    cross = np.einsum("st,stu,u->s", weights, gramians, ones)
    update = np.einsum("st,stu,su->s", weights, gramians, weights)
    mean = np.einsum("t,stu,u->s", ones, gramians, ones)
    denominator = np.sqrt(np.maximum(update, 0) * np.maximum(mean, 0))
    return np.where(denominator > 0, cross / np.where(denominator > 0, denominator, 1.0), np.nan)


def uses_jacobian_combine(run: Run) -> bool | None:
    """Whether the run's aggregator forms its update from J itself (None if unknown)."""
    name = run.config.get("aggregator")
    if not name:
        return None
    try:
        from mtl_jax.aggregators import get_aggregator  # noqa: PLC0415 - imports JAX

        return callable(getattr(get_aggregator(name, **run.config.get("aggregator_options", {})), "combine", None))
    except Exception:  # noqa: BLE001 - an aggregator this version lacks: say unknown
        return None


@dataclass(frozen=True)
class LayerSeries:
    """Per-module statistics logged by ``gradient_stats: "per_layer"``."""

    modules: list[str]
    tasks: list[str]
    pairs: list[str]
    steps: np.ndarray  # (S,)
    cosines: np.ndarray  # (S, M, P) upper-triangle pair cosines
    conflict: np.ndarray  # (S, M)


def layer_series(run: Run) -> LayerSeries | None:
    names = run.names(TRAIN)
    modules = list(dict.fromkeys(n[len(LAYER_CONFLICT):] for n in names if n.startswith(LAYER_CONFLICT)))
    if not modules:
        return None
    tasks = run.tasks
    pairs = [p for _, _, p in pair_names(tasks)]
    couples = [(tasks[i], tasks[j]) for i, j, _ in pair_names(tasks)]
    rows = [(s, r) for s, r in sorted(run.records[TRAIN].items())
            if all(f"{LAYER_CONFLICT}{m}" in r for m in modules)
            and all(pair_key(r, f"{LAYER_COSINE}{m}/", a, b) in r for m in modules for a, b in couples)]
    if not rows:
        return None
    steps = np.array([s for s, _ in rows])
    cosines = np.array([[[r[pair_key(r, f"{LAYER_COSINE}{m}/", a, b)] for a, b in couples] for m in modules] for _, r in rows])
    conflict = np.array([[r[f"{LAYER_CONFLICT}{m}"] for m in modules] for _, r in rows])
    return LayerSeries(modules, tasks, pairs, steps, cosines.reshape(len(rows), len(modules), len(pairs)), conflict)


LOGGED_UPDATE_COSINE = "update_cosine"


def update_cosine_series(run: Run, series: GradientSeries | None) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(steps, cos(d, ḡ), how it was obtained), or None when neither logged nor derivable.

    A logged ``update_cosine`` (the step's own ⟨d, Σ_t g_t⟩ / (‖d‖ ‖Σ_t g_t‖)) is used as is;
    otherwise it is derived from the Gramian and the weights when the update is Jᵀw.
    """
    steps, values = run.series(TRAIN, LOGGED_UPDATE_COSINE)
    if steps.size:
        return steps, values, "logged by the step"
    if series is None or series.weights is None or uses_jacobian_combine(run):
        return None
    return series.steps, update_mean_cosine(series.gramians, series.weights), "from the logged norms, cosines and weights"

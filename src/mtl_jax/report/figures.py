"""The report's matplotlib figures, each rendered to PNG bytes (no pyplot global state)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from mtl_jax.report.downsample import downsample
from mtl_jax.report.gradients import (
    GradientSeries,
    LayerSeries,
    magnitude_similarity,
    norm_ratios,
    pair_names,
)
from mtl_jax.report.runs import TRAIN, Run

DPI = 90
EVAL_METRICS = ("loss", "accuracy", "macro_f1", "mae")
MAX_LINES = 12  # beyond this many pairs, draw the mean and the range instead of each line


@dataclass(frozen=True)
class Rendered:
    """One figure: file name (without .png), title, caption and the PNG."""

    name: str
    title: str
    caption: str
    png: bytes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _colours(count: int) -> list:
    from matplotlib import colormaps  # noqa: PLC0415

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _grid(count: int, width: float = 4.2, height: float = 3.0, columns: int = 3):
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, axes[:count]


def _line(ax, steps, values, **style) -> None:
    steps, values = downsample(steps, values)
    marker = "o" if len(steps) <= 12 else None
    ax.plot(steps, values, marker=marker, markersize=3, **style)


def _legend(ax, count: int) -> None:
    if count:
        ax.legend(fontsize=7, ncol=2 if count > 6 else 1, loc="best")


def _figure_legend(figure: Figure, *axes) -> None:
    """One legend below the panels (many runs would cover the curves), each label once."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    labels, handles = list(seen), list(seen.values())
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(3, len(handles)), fontsize=7)


def training_curves(run: Run) -> Rendered | None:
    """Train loss per task, then each validation metric per task."""
    tasks = run.tasks
    panels = [(TRAIN, "loss", "train loss")]
    evaluated = len(run.records.get(run.eval_split, {})) >= 2  # one point (at the end) is in the table
    panels += [(run.eval_split, m, f"{run.eval_split} {m}") for m in EVAL_METRICS
               if evaluated and any(f"{m}/{t}" in run.names(run.eval_split) for t in tasks)]
    panels = [p for p in panels if any(run.series(p[0], f"{p[1]}/{t}")[0].size for t in tasks)]
    if not panels:
        return None
    figure, axes = _grid(len(panels))
    for ax, (split, metric, title) in zip(axes, panels):
        for task, colour in zip(tasks, _colours(len(tasks))):
            steps, values = run.series(split, f"{metric}/{task}")
            if steps.size:
                _line(ax, steps, values, color=colour, label=task)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if metric in ("loss", "mae"):
            positive = all((run.series(split, f"{metric}/{t}")[1] > 0).all() for t in tasks)
            if positive and split == TRAIN:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
    _legend(axes[0], len(tasks))
    return Rendered("curves", "Per-task training and validation curves",
                    f"Train loss (logged every {run.config.get('log_every', '?')} steps)"
                    + (f" and the {run.eval_split} metrics." if len(panels) > 1 else f"; {run.eval_split} was evaluated"
                       " at most once (config eval_every), so its values are in the final table only."),
                    _png(figure))


def task_weights(run: Run) -> Rendered | None:
    tasks = run.tasks
    if not any(run.series(TRAIN, f"weight/{t}")[0].size for t in tasks):
        return None
    figure = Figure(figsize=(7, 3.4), layout="constrained")
    ax = figure.subplots()
    for task, colour in zip(tasks, _colours(len(tasks))):
        _line(ax, *run.series(TRAIN, f"weight/{task}"), color=colour, label=task)
    ax.set_xlabel("step"), ax.set_ylabel("weight w_t"), ax.grid(alpha=0.3)
    _legend(ax, len(tasks))
    return Rendered("weights", "Aggregator task weights", "The weights w with d = Jᵀw, as the step logs them.", _png(figure))


def conflict_rate(series: GradientSeries) -> Rendered:
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    _line(ax, series.steps, series.conflict, color="tab:red", label="logged")
    if series.steps.size > 20:
        window = max(3, series.steps.size // 20)
        smooth = np.convolve(series.conflict, np.ones(window) / window, mode="valid")
        _line(ax, series.steps[window - 1:], smooth, color="black", label=f"mean of {window}")
        _legend(ax, 2)
    ax.set_ylim(-0.03, 1.03), ax.set_xlabel("step"), ax.set_ylabel("fraction of pairs"), ax.grid(alpha=0.3)
    return Rendered("conflict_rate", "Conflict rate over training",
                    f"Fraction of task pairs with cos(g_i, g_j) < 0; mean {np.nanmean(series.conflict):.3f}.",
                    _png(figure))


def _heatmap(ax, matrix, labels, title, vmin=-1.0, vmax=1.0, cmap="RdBu"):
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    if len(labels) <= 6:
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if abs(matrix[i, j]) > 0.55 else "black"
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    return image


def snapshot_indices(count: int, how_many: int = 3) -> list[int]:
    """First, middle and last logged steps (fewer when fewer are logged)."""
    return sorted(set(np.linspace(0, count - 1, min(how_many, count)).round().astype(int).tolist()))


def cosine_heatmaps(series: GradientSeries, tasks: list[str]) -> Rendered:
    picks = snapshot_indices(series.steps.size)
    panels = [(series.cosines[k], f"step {series.steps[k]}") for k in picks]
    panels.append((np.nanmean(series.cosines, axis=0), f"mean over {series.steps.size} logged steps"))
    figure, axes = _grid(len(panels), width=3.4, height=3.3, columns=4)
    image = None
    for ax, (matrix, title) in zip(axes, panels):
        image = _heatmap(ax, matrix, tasks, title)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="cos(g_i, g_j)")
    return Rendered("cosine_heatmaps", "Pairwise gradient cosines",
                    "Cosine matrix of the task gradients at a few logged steps and averaged over training.",
                    _png(figure))


def magnitudes(series: GradientSeries, tasks: list[str]) -> Rendered:
    figure, axes = _grid(2, width=5.0, height=3.2, columns=2)
    ratios = norm_ratios(series.norms)
    for t, (task, colour) in enumerate(zip(tasks, _colours(len(tasks)))):
        _line(axes[0], series.steps, ratios[:, t], color=colour, label=task)
    axes[0].set_title("‖g_t‖ / mean_s ‖g_s‖", fontsize=10)
    _legend(axes[0], len(tasks))
    gms = magnitude_similarity(series.norms)
    pairs = pair_names(tasks)
    if len(pairs) <= MAX_LINES:
        for (i, j, name), colour in zip(pairs, _colours(len(pairs))):
            _line(axes[1], series.steps, gms[:, i, j], color=colour, label=name)
        _legend(axes[1], len(pairs))
    else:
        upper = np.triu_indices(len(tasks), k=1)
        values = gms[:, upper[0], upper[1]]
        _line(axes[1], series.steps, values.mean(axis=1), color="black", label=f"mean of {len(pairs)} pairs")
        steps, low = downsample(series.steps, values.min(axis=1))
        _, high = downsample(series.steps, values.max(axis=1))
        axes[1].fill_between(steps, low, high, color="grey", alpha=0.3, label="min–max")
        _legend(axes[1], 2)
    axes[1].set_title("gradient magnitude similarity", fontsize=10)
    axes[1].set_ylim(-0.03, 1.03)
    for ax in axes:
        ax.set_xlabel("step"), ax.grid(alpha=0.3)
    return Rendered("magnitudes", "Gradient-norm ratios and magnitude similarity",
                    "Left: each task's gradient norm over the mean norm. Right: GMS = 2‖g_i‖‖g_j‖/(‖g_i‖²+‖g_j‖²) "
                    "(Yu et al. 2020); 1 means equal magnitudes.", _png(figure))


def update_cosine(steps: np.ndarray, values: np.ndarray, source: str) -> Rendered:
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    _line(ax, steps, values, color="tab:purple")
    low = float(np.nanmin(values)) if np.isfinite(values).any() else -1.0
    ax.set_ylim(min(-0.05, low - 0.05), 1.05)
    ax.set_xlabel("step"), ax.set_ylabel("cos(d, ḡ)"), ax.grid(alpha=0.3)
    return Rendered("update_cosine", "Update direction vs the mean gradient",
                    f"cos(d, ḡ) between the update d and the mean task gradient ḡ, {source} "
                    f"(d = Jᵀw: wᵀG1/√(wᵀGw·1ᵀG1)); mean {np.nanmean(values):.3f}.", _png(figure))


def task_mean_cosines(pair_cosines: np.ndarray, tasks: list[str]) -> np.ndarray:
    """(M, T): for each module, the mean over s ≠ t of cos(g_t, g_s), from the (M, P) upper-triangle pairs."""
    full = np.zeros((pair_cosines.shape[0], len(tasks), len(tasks)))
    for k, (i, j, _) in enumerate(pair_names(tasks)):
        full[:, i, j] = full[:, j, i] = pair_cosines[:, k]
    return full.sum(axis=2) / max(len(tasks) - 1, 1)


def layer_figures(layers: LayerSeries) -> Rendered:
    figure, axes = _grid(3, width=4.8, height=3.4, columns=3)
    mean_cos = np.nanmean(layers.cosines, axis=2)  # (S, M)
    steps, modules = layers.steps, layers.modules
    picks = np.unique(np.linspace(0, steps.size - 1, min(steps.size, 200)).round().astype(int))  # ≤ 200 columns
    edges = np.concatenate([[steps[picks[0]] - 0.5], (steps[picks[:-1]] + steps[picks[1:]]) / 2, [steps[picks[-1]] + 0.5]])
    image = axes[0].pcolormesh(edges, np.arange(len(modules) + 1) - 0.5, mean_cos[picks].T, cmap="RdBu", vmin=-1, vmax=1)
    axes[0].invert_yaxis()
    axes[0].set_yticks(range(len(modules)), modules, fontsize=7)
    axes[0].set_title("mean pairwise cosine per module", fontsize=9), axes[0].set_xlabel("step")
    figure.colorbar(image, ax=axes[0], shrink=0.8)
    for m, (module, colour) in enumerate(zip(modules, _colours(len(modules)))):
        _line(axes[1], steps, layers.conflict[:, m], color=colour, label=module)
    axes[1].set_title("conflict rate per module", fontsize=9), axes[1].set_xlabel("step")
    axes[1].set_ylim(-0.03, 1.03), axes[1].grid(alpha=0.3)
    _legend(axes[1], len(modules))
    pair_mean = np.nanmean(layers.cosines, axis=0)  # (M, P)
    if len(layers.pairs) <= MAX_LINES:
        columns, labels, title = pair_mean, layers.pairs, "cosine per module and pair, mean over steps"
    else:  # many pairs: each task's mean cosine with the others, per module
        columns, labels = task_mean_cosines(pair_mean, layers.tasks), layers.tasks
        title = "each task's mean cosine with the others"
    image = axes[2].imshow(columns, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    axes[2].set_yticks(range(len(modules)), modules, fontsize=7)
    axes[2].set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes[2].set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes[2], shrink=0.8)
    return Rendered("layers", "Per-layer conflict", "Where in the shared trunk the tasks pull apart, and when "
                    "(Gramian of each top-level module's parameters).", _png(figure))


def overlaid_curves(runs: list[Run], split: str, metric: str, title: str, name: str) -> Rendered | None:
    """Per task, one line per run; evaluation curves only where runs were evaluated twice or more."""
    tasks = list(dict.fromkeys(t for r in runs for t in r.tasks))
    least = 1 if split == TRAIN else 2
    tasks = [t for t in tasks if any(r.series(split if split == TRAIN else r.eval_split, f"{metric}/{t}")[0].size >= least
                                     for r in runs)]
    if not tasks:
        return None
    figure, axes = _grid(len(tasks), width=3.8, height=2.8, columns=4)
    for ax, task in zip(axes, tasks):
        for run, colour in zip(runs, _colours(len(runs))):
            steps, values = run.series(split if split == TRAIN else run.eval_split, f"{metric}/{task}")
            if steps.size:
                _line(ax, steps, values, color=colour, label=run.label)
        ax.set_title(task, fontsize=9), ax.set_xlabel("step"), ax.grid(alpha=0.3)
    _figure_legend(figure, *axes)
    return Rendered(name, title, f"One line per run: {metric} ({'train' if split == TRAIN else 'evaluation split'}).", _png(figure))


def overlaid_conflict(runs: list[tuple[Run, GradientSeries]]) -> Rendered:
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    ax = figure.subplots()
    for (run, series), colour in zip(runs, _colours(len(runs))):
        _line(ax, series.steps, series.conflict, color=colour, label=run.label)
    ax.set_ylim(-0.03, 1.03), ax.set_xlabel("step"), ax.set_ylabel("fraction of pairs"), ax.grid(alpha=0.3)
    _figure_legend(figure, ax)
    return Rendered("conflict_rates", "Conflict rate, all runs", "Fraction of task pairs with negative cosine.", _png(figure))

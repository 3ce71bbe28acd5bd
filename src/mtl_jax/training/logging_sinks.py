"""Metrics to disk: JSON lines (``metrics.jsonl``) and TensorBoard event files.

Each record is ``{"step": s, "split": "train"|"validation"|..., name: value, ...}`` with
flat names such as ``loss/left``, ``grad_norm/left``, ``grad_cosine/left~right``,
``conflict_fraction``, ``learning_rate``, ``examples_per_second``, ``accuracy/left``.
TensorBoard gets the same scalars under ``<split>/<name>``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

import numpy as np

from mtl_jax.surgery.gradient_stats import layer_scalars


def step_scalars(metrics: Mapping[str, Any], task_names: Sequence[str]) -> dict[str, float]:
    """Flat scalars from the train step's metrics (host arrays): per-task loss, weight and
    gradient norm, the upper triangle of the cosine matrix, the conflict fraction."""
    scalars: dict[str, float] = {}
    for key in ("loss", "weights", "grad_norm"):
        if key in metrics:
            for name, value in zip(task_names, np.asarray(metrics[key]).reshape(-1)):
                scalars[f"{'weight' if key == 'weights' else key}/{name}"] = float(value)
    if "grad_cosine" in metrics:
        cosine = np.asarray(metrics["grad_cosine"])
        for i, a in enumerate(task_names):
            for j in range(i + 1, len(task_names)):
                scalars[f"grad_cosine/{a}~{task_names[j]}"] = float(cosine[i, j])
    if "conflict_fraction" in metrics:
        scalars["conflict_fraction"] = float(metrics["conflict_fraction"])
    if "layer_stats" in metrics:
        scalars.update(layer_scalars(metrics["layer_stats"], task_names))
    return scalars


def eval_scalars(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{task: {metric: v}}`` as ``{"metric/task": v}``."""
    return {f"{metric}/{task}": float(value) for task, named in results.items() for metric, value in named.items()}


def _json_value(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # JSON has no NaN/Inf


def drop_records_after(run_dir: str | Path, step: int) -> int:
    """Remove the records of steps after ``step`` from ``metrics.jsonl`` (a run resumed from
    the checkpoint of ``step`` logs them again); returns how many were dropped. A torn last
    line (the process was killed while writing) is dropped too."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if record_step > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        partial.replace(path)
    return dropped


def summary_writer_class() -> type:
    """tensorboardX's ``SummaryWriter``, imported without PyTorch.

    tensorboardX imports torch whenever it is installed (the ``peers`` extra), only to accept
    torch tensors; we log Python floats, and the import costs seconds at every start. Unless
    the process already uses torch, the import runs with torch marked absent."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter  # noqa: PLC0415 - optional sink

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        return SummaryWriter
    finally:
        del sys.modules["torch"]


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` and TensorBoard; optionally echoes JSON to a stream."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, echo: TextIO | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.file = self.path.open("a", encoding="utf-8")
        self.echo = echo
        self.writer = None
        if tensorboard:
            self.writer = summary_writer_class()(str(Path(run_dir) / "tensorboard"))

    def write(self, step: int, split: str, scalars: Mapping[str, float], **facts: Any) -> None:
        record = {"step": int(step), "split": split, **facts, **{k: _json_value(v) for k, v in scalars.items()}}
        line = json.dumps(record)
        self.file.write(line + "\n")
        self.file.flush()
        if self.echo is not None:
            print(line, file=self.echo, flush=True)
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(f"{split}/{name}", value, int(step))

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class NullLogger:
    """The logger of a process that does not write (processes other than 0 of a multi-process job)."""

    def write(self, step: int, split: str, scalars: Mapping[str, float], **facts: Any) -> None:
        del step, split, scalars, facts

    def close(self) -> None:
        pass


def stdout_echo(enabled: bool) -> TextIO | None:
    return sys.stdout if enabled else None

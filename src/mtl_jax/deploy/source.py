"""A trained run as export needs it: config, dataset spec, model, restored parameters.

``open_run(run_dir, which)`` rebuilds the run's model from its saved ``config.json`` and
restores the parameters of its ``best`` (by the validation metric) or ``latest``
checkpoint, together with what preprocessing the training data used (vocabulary, length
buckets, lower-casing) and the run's ``results.json``. Bad input (no run there, no
checkpoint) is a ConfigError/DataError naming the directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from mtl_jax.data.spec import DatasetSpec
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import PyTree

CHECKPOINTS = ("best", "latest")
RESULTS_FILE = "results.json"
INIT_FILE = "init_from.json"


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What export reads from a run directory.

    Attributes:
      run_dir: the run directory.
      config: its resolved config (``config.json``).
      spec: the dataset spec the model was built from (tasks: every task of the dataset).
      model, params: the pure model and the restored parameters (host arrays).
      step, checkpoint: the restored step and which checkpoint ("best" or "latest").
      text: text input only: ``{"vocabulary", "lowercase", "buckets"}`` of the training data.
      results: ``results.json`` (empty if the run did not finish).
      init_from: ``init_from.json`` (the lineage of a fine-tuned run), or None.
    """

    run_dir: Path
    config: dict[str, Any]
    spec: DatasetSpec
    model: MultiTaskModel
    params: PyTree
    step: int
    checkpoint: str
    text: Mapping[str, Any] | None
    results: Mapping[str, Any]
    init_from: Mapping[str, Any] | None


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is unreadable ({error}); fix: re-run or remove it") from error


def text_preprocessing(opened: Any) -> dict[str, Any] | None:
    """Vocabulary, lower-casing and buckets of an opened (or mixed) text dataset."""
    first = opened.datasets[0] if hasattr(opened, "datasets") else opened
    if first.spec.input.kind != "text":
        return None
    return {
        "vocabulary": list(first.vocabulary),
        "lowercase": bool(first.collate.encoder.lowercase),
        "buckets": [int(b) for b in first.buckets],
    }


def open_run(run_dir: str | Path, which: str = "best") -> TrainedRun:
    """The run in ``run_dir`` restored from its ``which`` checkpoint (see module docstring)."""
    import jax  # noqa: PLC0415

    from mtl_jax.training.experiment import Experiment  # noqa: PLC0415 - heavy: the trainer

    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise ConfigError(f"--checkpoint {which!r}: accepted values: {', '.join(CHECKPOINTS)}")
    experiment = Experiment.from_run_dir(run_dir)
    step, state, _ = experiment.restore_with_extra(run_dir, which)
    return TrainedRun(
        run_dir=run_dir, config=experiment.config.to_dict(), spec=experiment.data.spec, model=experiment.model,
        params=jax.device_get(state.params), step=int(step), checkpoint=which,
        text=text_preprocessing(experiment.data), results=read_json(run_dir / RESULTS_FILE) or {},
        init_from=read_json(run_dir / INIT_FILE),
    )  # fmt: skip

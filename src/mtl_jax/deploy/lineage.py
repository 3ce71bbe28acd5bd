"""Fine-tuning: initial parameters from a trained run or an exported model, and lineage.

``load_init_params(path, params_template) -> (params, lineage)`` for
``mtl-jax train --init-from RUN|DIR``:

* ``path`` is a run directory (``config.json`` + ``checkpoints/``; its best checkpoint, else
  its latest) or an exported model (``metadata.json`` + ``params.npz``);
* every leaf of ``params_template`` (the new run's freshly initialised parameters) whose
  dotted name (:mod:`mtl_jax.deploy.naming`) the source has takes the source's value; the
  others (a new task's head) keep their fresh initialisation and are listed;
* a name present in both with different shapes (another vocabulary, width or class count)
  is a ConfigError naming it; so is a source sharing none of the template's shared
  parameters.

``lineage`` is JSON: where the parameters came from (kind, path, step, config hash), which
leaves were loaded and which kept fresh, and the source's own lineage. The trainer saves it
as ``<run dir>/init_from.json``; ``mtl-jax export`` copies it into the artifact's
``metadata["lineage"]`` (newest first), so a model records every run it descends from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from mtl_jax.deploy import artifact
from mtl_jax.deploy.naming import named_leaves, path_name
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.types import PyTree

INIT_FILE = "init_from.json"
STATE_PARAMS_PREFIX = "params."


def exported_arrays(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """{name: array} and the lineage entry of an exported model."""
    metadata = artifact.read_metadata(directory)
    names = metadata["params"]["names"]
    arrays = dict(zip(names, artifact.read_params(directory, names)))
    source = {k: v for k, v in metadata.get("source", {}).items() if k != "config"}
    entry = {"kind": "export", "path": str(directory.resolve()), "source": source, "lineage": metadata.get("lineage", [])}
    return arrays, entry


def run_arrays(run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """{name: array} of a run's best (else latest) checkpoint, and its lineage entry."""
    from mtl_jax.training.checkpoint import Checkpointer  # noqa: PLC0415 - orbax: only for runs

    directory = run_dir / "checkpoints"
    if not directory.is_dir():
        raise DataError(f"--init-from {str(run_dir)!r}: no checkpoints/ in the run; fix: train it first")
    checkpointer = Checkpointer(directory, read_only=True)
    try:
        steps = checkpointer.steps()
        if not steps:
            raise DataError(f"--init-from {str(run_dir)!r}: the run holds no checkpoint; fix: train it first")
        flat, extra = checkpointer.restore_arrays(steps[-1])
        best = extra.get("best", {}).get("step")
        step = steps[-1]
        if best is not None and best != step and best in steps:
            flat, extra = checkpointer.restore_arrays(best)
            step = best
    finally:
        checkpointer.close()
    arrays = {name[len(STATE_PARAMS_PREFIX):]: value for name, value in flat.items() if name.startswith(STATE_PARAMS_PREFIX)}
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    config_hash = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()
    earlier = []
    init_file = run_dir / INIT_FILE
    if init_file.is_file():
        previous = json.loads(init_file.read_text(encoding="utf-8"))
        earlier = [{k: v for k, v in previous.items() if k != "lineage"}, *previous.get("lineage", [])]
    entry = {"kind": "run", "path": str(run_dir.resolve()), "source": {"step": int(step), "config_hash": config_hash},
             "lineage": earlier}  # fmt: skip
    return arrays, entry


def source_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if (path / artifact.METADATA_FILE).is_file():
        return exported_arrays(path)
    if (path / "config.json").is_file():
        return run_arrays(path)
    raise ConfigError(
        f"--init-from {str(path)!r} is neither a run directory (config.json) nor an exported model"
        " (metadata.json); fix: pass a directory made by `mtl-jax train` or `mtl-jax export`"
    )


def load_init_params(path: str | Path, params_template: PyTree) -> tuple[PyTree, dict[str, Any]]:
    """(parameters shaped like ``params_template``, lineage JSON); see the module docstring."""
    arrays, entry = source_arrays(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params_template)
    loaded, fresh, values = [], [], []
    for key_path, template in leaves:
        name = path_name(key_path)
        if name not in arrays:
            fresh.append(name)
            values.append(template)
            continue
        value = np.asarray(arrays[name])
        if value.shape != np.shape(template):
            raise ConfigError(
                f"--init-from {str(path)!r}: parameter {name!r} has shape {list(value.shape)} there and"
                f" {list(np.shape(template))} in this model; fix: use the same model config (vocabulary,"
                " widths, classes) for the shared trunk and the kept heads"
            )
        loaded.append(name)
        values.append(value.astype(np.asarray(template).dtype))
    shared = [name for name in named_leaves(params_template) if name.startswith("shared.")]
    if shared and not any(name in arrays for name in shared):
        raise ConfigError(
            f"--init-from {str(path)!r} shares none of this model's {len(shared)} shared parameters"
            " (another trunk or architecture); fix: fine-tune with the same model config"
        )
    params = jax.tree_util.tree_unflatten(treedef, values)
    return params, {**entry, "loaded": loaded, "initialised_fresh": fresh}


def save_lineage(run_dir: str | Path, lineage: Mapping[str, Any]) -> Path:
    """Write ``init_from.json`` into a run directory (what export reads back)."""
    path = Path(run_dir) / INIT_FILE
    path.write_text(json.dumps(dict(lineage), indent=1) + "\n", encoding="utf-8")
    return path

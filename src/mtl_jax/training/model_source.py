"""Building the model for the trainer from ``config["model"]`` and the dataset's spec.

A thin seam over :func:`mtl_jax.models.factory.build_from_config` (trunks, architectures,
heads; its module docstring is the schema of ``config["model"]``), so the loop reads one
function and tests can substitute it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from flax import nnx

from mtl_jax.data.spec import DatasetSpec
from mtl_jax.models.factory import build_from_config, resolve_config
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import PyTree



def check_model_config(model_config: Mapping[str, Any]) -> None:
    """ConfigError for an unknown key or value of ``config["model"]`` (no data needed)."""
    resolve_config(model_config)


def build(model_config: Mapping[str, Any], spec: DatasetSpec, task_names: Sequence[str], seed: int) -> tuple[MultiTaskModel, PyTree]:
    """(model, params) for the named tasks of ``spec``, initialised from ``seed``."""
    return build_from_config(dict(model_config), spec, list(task_names), nnx.Rngs(seed))

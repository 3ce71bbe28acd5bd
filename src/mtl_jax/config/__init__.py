"""The run config: experiment files and ``--set`` (:mod:`~mtl_jax.config.files`), and the
typed, validated :class:`RunConfig` (:mod:`~mtl_jax.config.run_config`)."""

from mtl_jax.config.files import apply_overrides, load_config
from mtl_jax.config.run_config import (
    REQUIRED,
    CheckpointConfig,
    MixingConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    resolve,
)


def parse(config: dict, overrides=(), *, num_devices: int | None = None) -> RunConfig:
    """``RunConfig.from_dict(apply_overrides(resolve(config), overrides))``: the one way from a
    config dict and ``--set`` values to a checked run config."""
    return RunConfig.from_dict(apply_overrides(resolve(config), overrides), num_devices=num_devices)


__all__ = [
    "REQUIRED",
    "CheckpointConfig",
    "MixingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RunConfig",
    "apply_overrides",
    "load_config",
    "parse",
    "resolve",
]

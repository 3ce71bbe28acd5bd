"""Optimisers by name from a config entry ``{"name": ..., "learning_rate": ..., ...}``."""

from __future__ import annotations

from typing import Any

import optax

from mtl_jax.errors import ConfigError

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def make_optimizer(spec: dict[str, Any]) -> optax.GradientTransformation:
    """``OPTIMIZERS[name](**rest)``; unknown names or arguments are config errors."""
    options = dict(spec)
    name = options.pop("name", None)
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"config key 'optimizer.name' is {name!r}; accepted values: {', '.join(sorted(OPTIMIZERS))}"
        )
    try:
        return OPTIMIZERS[name](**options)
    except TypeError as error:
        raise ConfigError(f"config key 'optimizer': {name} does not accept {sorted(options)}: {error}") from error

"""Optimisers by name from the config's ``optimizer`` entry (:class:`~mtl_jax.config.OptimizerConfig`)."""

from __future__ import annotations

import optax

from mtl_jax.errors import ConfigError

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def make_optimizer(config) -> optax.GradientTransformation:
    """``OPTIMIZERS[name](learning_rate, **options)``; options the optimiser does not take,
    or values it rejects, are config errors."""
    options = dict(config.options)
    try:
        return OPTIMIZERS[config.name](learning_rate=config.learning_rate, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"config key 'optimizer': {config.name} does not accept {sorted(options)}: {' '.join(str(error).split())}"
        ) from error

"""The train state: everything a step reads and writes, as one pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mtl_jax.aggregators.kinds import Aggregator, initial_state
from mtl_jax.types import PyTree


@struct.dataclass
class TrainState:
    """Parameters, optimiser and aggregator state, the PRNG key and the step counter.

    ``params = {"shared": ..., "tasks": {name: ...}}``. The key never changes: step ``s`` draws
    its randomness from ``fold_in(key, s)``, so a run is reproducible from its seed and any
    checkpointed step.
    """

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    aggregator_state: PyTree
    key: jax.Array


def create_train_state(
    params: PyTree,
    optimizer: optax.GradientTransformation,
    aggregator: Aggregator,
    num_tasks: int,
    seed: int,
) -> TrainState:
    """A fresh train state at step 0 (unplaced; see ``mtl_jax.parallel.replicate``).

    The aggregator's state comes from :func:`~mtl_jax.aggregators.initial_state` (a
    Jacobian aggregator's ``init`` also sees ``params["shared"]``).
    """
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        aggregator_state=initial_state(aggregator, num_tasks, params["shared"]),
        key=jax.random.key(seed),
    )

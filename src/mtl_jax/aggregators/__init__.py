"""Aggregators: pure functions from task-gradient Gramians, losses or Jacobians to updates.

A method is a small NamedTuple of pure functions; its type is its kind (``kinds.py``) and
tells the train step which path to take:

- ``GramianWeighting(name, init, weigh, modes=MODES)``: weights from the T×T Gramian;
- ``LossWeighting(name, init, weigh)``: weights from the losses only (one backward pass);
- ``UniformWeighting(name, weight)``: the same weight c for every task (EW: one backward of
  the summed loss);
- ``JacobianAggregator(name, init, combine, modes=MODES)``: the direction from J itself.
- ``MetaWeighting(name, init, update, modes=("full",))``: weights meta-learned on a second batch
  through a look-ahead step (``update(MetaInputs, state) -> MetaUpdate``, all the gradients).

``weigh(inputs, state) -> (weights (T,), new_state)`` reads a :class:`WeightingInputs`
``(gramian, losses, key, step)``; ``combine(jacobian, inputs, state) -> JacobianUpdate(direction,
weights, state)``. A weighting's ``init`` takes ``num_tasks``, a Jacobian aggregator's
``init`` takes ``(num_tasks, shared_params)``; :func:`initial_state` calls the right one.
States are NamedTuples (``EmptyState()`` when there is none).

Writing a method of each kind (first docstring line: name, paper, defaults)::

    class ScaledState(NamedTuple):
        scale: jax.Array

    def min_norm_pair() -> GramianWeighting:
        '''MinNormPair (example): the heavier weight on the smaller gradient.'''
        def weigh(inputs, state):
            inverse = 1.0 / jnp.maximum(jnp.diagonal(inputs.gramian), 1e-12)
            return inverse / inverse.sum(), state
        return GramianWeighting("min_norm_pair", no_state, weigh)

    def inverse_loss(decay: float = 0.9) -> LossWeighting:
        '''InverseLoss (example, decay=0.9): w_t ∝ 1 / EMA(L_t).'''
        def init(num_tasks):
            return ScaledState(scale=jnp.ones((num_tasks,), jnp.float32))
        def weigh(inputs, state):
            scale = decay * state.scale + (1 - decay) * inputs.losses
            return 1.0 / scale, ScaledState(scale=scale)
        return LossWeighting("inverse_loss", init, weigh)

    def sign_sum() -> JacobianAggregator:
        '''SignSum (example): coordinate-wise sum of the gradients' signs (Jacobian level).'''
        def combine(jacobian, inputs, state):
            direction = jax.tree.map(lambda rows: jnp.sign(rows).sum(axis=0), jacobian)
            return JacobianUpdate(direction, jnp.full(inputs.losses.shape, jnp.nan), state)
        return JacobianAggregator("sign_sum", no_jacobian_state, combine)

To offer a method by name, add its factory to ``registry.FACTORIES``. ``REGISTRY`` maps a
name to ``(factory, description)``, the description being the factory docstring's first line;
``get_aggregator(name, **options)`` passes the options to the factory, whose keyword defaults
are the papers'.
"""

from __future__ import annotations

from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.kinds import (
    KINDS,
    MODES,
    Aggregator,
    EmptyState,
    GramianWeighting,
    JacobianAggregator,
    JacobianUpdate,
    LossWeighting,
    MetaInputs,
    MetaUpdate,
    MetaWeighting,
    Mode,
    UniformWeighting,
    WeightingInputs,
    initial_state,
    no_jacobian_state,
    no_state,
)
from mtl_jax.aggregators.pcgrad import pcgrad_weights, random_visit_orders
from mtl_jax.aggregators.registry import REGISTRY, get_aggregator

__all__ = [
    "Aggregator",
    "EmptyState",
    "GramianWeighting",
    "JacobianAggregator",
    "JacobianUpdate",
    "KINDS",
    "LossWeighting",
    "MODES",
    "MetaInputs",
    "MetaUpdate",
    "MetaWeighting",
    "Mode",
    "REGISTRY",
    "UniformWeighting",
    "WeightingInputs",
    "get_aggregator",
    "gramian",
    "initial_state",
    "no_jacobian_state",
    "no_state",
    "pcgrad_weights",
    "random_visit_orders",
    "weighted_sum",
]

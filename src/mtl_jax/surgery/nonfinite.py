"""Guards against a non-finite loss: never write NaN or Inf into the train state.

* The optimiser is wrapped with ``optax.apply_if_finite``: when any gradient is NaN/Inf the
  update is zero, the inner optimiser state is kept, and ``total_notfinite`` counts the
  skipped steps (read with :func:`skipped_updates`).
* The aggregator's state update is kept only when the step's losses and Gramian (and, for
  Jacobian aggregators, the Jacobian) are finite, so stateful methods (GradVac, CR-MOGM,
  MoCo, ...) are not poisoned either; a meta weighting's, when its training losses and
  gradients are finite. The wrapper returns an aggregator of the same kind.

Both are pure wrappers around the pieces ``make_train_step`` receives.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregators.kinds import (
    Aggregator,
    CombineFn,
    GramianWeighting,
    JacobianAggregator,
    JacobianUpdate,
    LossWeighting,
    MetaInputs,
    MetaUpdate,
    MetaWeighting,
    UniformWeighting,
    WeighFn,
    WeightingInputs,
)

NEVER_GIVE_UP = 2**31 - 1


def skip_nonfinite_updates(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` that skips (and counts) every update with a non-finite gradient."""
    return optax.apply_if_finite(optimizer, max_consecutive_errors=NEVER_GIVE_UP)


def skipped_updates(opt_state: Any) -> jax.Array:
    """Number of updates skipped so far by :func:`skip_nonfinite_updates`."""
    return opt_state.total_notfinite


def _all_finite(inputs: WeightingInputs) -> jax.Array:
    finite = jnp.all(jnp.isfinite(inputs.losses))
    if inputs.gramian is not None:
        finite &= jnp.all(jnp.isfinite(inputs.gramian))
    return finite


def _keep_if(finite: jax.Array, new_state: Any, state: Any) -> Any:
    return jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)


def _guarded_weigh(weigh: WeighFn) -> WeighFn:
    def guarded(inputs: WeightingInputs, state):
        weights, new_state = weigh(inputs, state)
        return weights, _keep_if(_all_finite(inputs), new_state, state)

    return guarded


def _guarded_combine(combine: CombineFn) -> CombineFn:
    def guarded(jacobian: Any, inputs: WeightingInputs, state) -> JacobianUpdate:
        direction, weights, new_state = combine(jacobian, inputs, state)
        finite = _all_finite(inputs)
        for leaf in jax.tree.leaves(jacobian):
            finite &= jnp.all(jnp.isfinite(leaf))
        return JacobianUpdate(direction, weights, _keep_if(finite, new_state, state))

    return guarded


def _guarded_update(update):
    def guarded(inputs: MetaInputs, state) -> MetaUpdate:
        result = update(inputs, state)
        finite = jnp.all(jnp.isfinite(result.losses))
        for leaf in jax.tree.leaves(result.grads):
            finite &= jnp.all(jnp.isfinite(leaf))
        return result._replace(state=_keep_if(finite, result.state, state))

    return guarded


def keep_state_when_nonfinite(aggregator: Aggregator) -> Aggregator:
    """``aggregator`` of the same kind whose state stays unchanged on a step with non-finite
    inputs (losses, Gramian, and for Jacobian aggregators the Jacobian itself)."""
    match aggregator:
        case GramianWeighting() | LossWeighting():
            return aggregator._replace(weigh=_guarded_weigh(aggregator.weigh))
        case JacobianAggregator():
            return aggregator._replace(combine=_guarded_combine(aggregator.combine))
        case MetaWeighting():  # losses and gradients finite, else the state is kept
            return aggregator._replace(update=_guarded_update(aggregator.update))
        case UniformWeighting():
            return aggregator  # stateless
    raise TypeError(f"not an aggregator: {aggregator!r}")

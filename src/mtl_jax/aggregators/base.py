"""The aggregator contract: from per-task gradient information to task weights.

An aggregator turns the T task gradients of the shared parameters into one update
direction ``d = Σ_t w_t g_t = Jᵀ w``. It only computes the weights ``w``; the train step
forms the Gramian ``G = J Jᵀ`` before and the weighted sum after (see
``shared/design/gramian.md``), so one aggregator serves both the full-parameter mode
(J = gradients of the shared parameters) and the representation mode (J = gradients of the
shared representation).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

PyTree = Any


class WeightingInputs(NamedTuple):
    """What an aggregator may look at in one step. All arrays are replicated over devices.

    Attributes:
      gramian: (T, T) inner products of the globally reduced task gradients, or ``None``
        when the aggregator declares ``needs_gramian=False`` and no statistics are asked for.
      losses: (T,) the task losses of this step.
      key: a PRNG key for this step, identical on every device.
      step: the integer step counter.
    """

    gramian: jax.Array | None
    losses: jax.Array
    key: jax.Array
    step: jax.Array


WeighFn = Callable[[WeightingInputs, PyTree], tuple[jax.Array, PyTree]]


class Aggregator(NamedTuple):
    """A pure aggregation method.

    Attributes:
      name: registry name.
      init: ``num_tasks -> state``; the state pytree lives in the train state.
      weigh: ``(inputs, state) -> (weights (T,), new_state)``.
      needs_gramian: whether ``weigh`` reads ``inputs.gramian``.
      uniform_weight: for methods whose weights are the constant ``c·1`` (EW), a function
        ``num_tasks -> c``; the step then skips the Jacobian and back-propagates the summed
        loss once, scaling the shared gradient by ``c``.
    """

    name: str
    init: Callable[[int], PyTree]
    weigh: WeighFn
    needs_gramian: bool = True
    uniform_weight: Callable[[int], float] | None = None


def no_state(num_tasks: int) -> PyTree:
    """State initialiser of a stateless aggregator."""
    del num_tasks
    return ()

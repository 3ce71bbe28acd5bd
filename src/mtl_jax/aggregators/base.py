"""The aggregator contract: from per-task gradient information to task weights.

An aggregator turns the T task gradients of the shared parameters into one update
direction ``d = Σ_t w_t g_t = Jᵀ w``. Three kinds share this contract:

- Gramian level (most methods): ``weigh`` computes the weights ``w`` from ``G = J Jᵀ``; the
  train step forms G before and the weighted sum after (``docs/design.md``), so one
  aggregator serves both the full-parameter mode (J = gradients of the shared parameters)
  and the representation mode (J = gradients of the shared representation).
- Loss level (``needs_gramian=False``, no ``combine``: RLW, UW, DWA, FAMO, …): ``weigh``
  reads only the losses; the step then skips the Jacobian and back-propagates the weighted
  loss once (``needs_jacobian``).
- Jacobian level (``combine`` set: GradDrop, TrimmedMean, MoCo, ExcessMTL, DB-MTL): the
  direction is not a function of G alone (element-wise operations, or state shaped like
  the gradients), so ``combine`` receives J itself and returns the direction.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from mtl_jax.types import PyTree



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
CombineFn = Callable[[PyTree, WeightingInputs, PyTree], tuple[PyTree, jax.Array, PyTree]]
MODES = ("full", "representation")


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
      combine: for Jacobian-level methods, ``(jacobian, inputs, state) -> (direction,
        weights, new_state)``: ``jacobian`` is a pytree whose leaves carry a leading task
        axis (row t = g_t), ``direction`` has the structure of one row, ``weights`` is (T,)
        (NaN where the direction is no combination Jᵀw, e.g. TrimmedMean). The step calls it
        instead of ``weigh`` and the weighted sum. In representation mode the rows are this
        device's examples and ``inputs.key`` is folded with the device index.
      init_with_params: ``(num_tasks, shared_params) -> state`` for methods whose state is
        shaped like the shared parameters (MoCo's tracked gradients); used instead of
        ``init`` by :func:`initial_state`.
      modes: the train-step modes the method supports (``make_train_step`` raises a
        ValueError for the others).
    """

    name: str
    init: Callable[[int], PyTree]
    weigh: WeighFn
    needs_gramian: bool = True
    uniform_weight: Callable[[int], float] | None = None
    combine: CombineFn | None = None
    init_with_params: Callable[[int, PyTree], PyTree] | None = None
    modes: tuple[str, ...] = MODES


def no_state(num_tasks: int) -> PyTree:
    """State initialiser of a stateless aggregator."""
    del num_tasks
    return ()


def needs_jacobian(aggregator: Aggregator) -> bool:
    """Whether the step must form the task Jacobian (else one weighted-loss backward pass)."""
    return aggregator.needs_gramian or aggregator.combine is not None


def initial_state(aggregator: Aggregator, num_tasks: int, shared_params: PyTree) -> PyTree:
    """The aggregator's state at step 0 (``init_with_params`` if set, else ``init``)."""
    if aggregator.init_with_params is not None:
        return aggregator.init_with_params(num_tasks, shared_params)
    return aggregator.init(num_tasks)


def jacobian_only_weigh(name: str) -> WeighFn:
    """``weigh`` of a Jacobian-level method: it has no Gramian form, so calling it is a bug."""

    def weigh(inputs: WeightingInputs, state):
        raise TypeError(f"{name} works on the Jacobian itself: call its combine(), not weigh()")

    return weigh


def params_shaped_state(name: str) -> Callable[[int], PyTree]:
    """``init`` of a method whose state needs the shared parameters' shapes."""

    def init(num_tasks: int):
        raise TypeError(
            f"{name} keeps state shaped like the shared parameters: create it with "
            "mtl_jax.aggregators.base.initial_state(aggregator, num_tasks, params['shared'])"
        )

    return init


def float_dtype(x: jax.Array):
    """``x``'s dtype if floating, else float32 (weights follow the losses' precision)."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32

"""The kinds of aggregator: small NamedTuples of pure functions, told apart by their type.

An aggregator turns the T task gradients of the shared variables into one update direction,
most often ``d = Σ_t w_t g_t = Jᵀ w``. What it needs to see decides its kind, and the train
step (``mtl_jax.surgery.step``) picks its path from the kind alone (docs/design.md, "The
step"):

- :class:`GramianWeighting` (PCGrad, MGDA, UPGrad, CAGrad, …): the weights ``w`` are a
  function of the T×T Gramian ``G = J Jᵀ`` (and the losses, the step's key and counter).
  The step forms G and the weighted sum Jᵀw, so one weighting serves both modes: J holds the
  gradients of the shared parameters (``"full"``) or of the shared representation
  (``"representation"``).
- :class:`LossWeighting` (RLW, UW, DWA, FAMO, GLS, STCH, …): the weights read the losses
  only, so the step needs no Jacobian: one forward pass, then one backward pass of the
  weighted loss.
- :class:`UniformWeighting` (EW, equal constant weights): ``w = c·1`` for a constant c
  fixed by T, so the step back-propagates the summed loss once and scales by c — the
  cheapest path, kept apart from :class:`LossWeighting` because it needs not even the
  two-pass split of the heads.
- :class:`JacobianAggregator` (GradDrop, TrimmedMean, MoCo, ExcessMTL, DB-MTL): the direction
  is no function of G (element-wise operations, or state shaped like the gradients), so
  ``combine`` receives J itself. Its ``init`` also receives the shared parameters, for state
  shaped like them.
- :class:`MetaWeighting` (Auto-Lambda, MOML, FORUM): the weights are meta-learned on a second
  (meta) batch through a look-ahead step, so ``update`` receives the loss function, the
  parameters and both batches, and returns the gradients of all the parameters.

Every method keeps its state in a NamedTuple of its own (``GradVacState(targets=...)``), or
:class:`EmptyState`, so checkpoints name every array; the fields are in alphabetical order, the
order in which a dict of the same keys flattens. ``modes`` lists the train-step modes a method
supports.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple, Union

import jax
import jax.numpy as jnp

from mtl_jax.types import PyTree

Mode = Literal["full", "representation"]
MODES: tuple[str, ...] = ("full", "representation")


class WeightingInputs(NamedTuple):
    """What an aggregator may look at in one step. All arrays are replicated over devices.

    Attributes:
      gramian: (T, T) inner products of the globally reduced task gradients; always an array
        for a :class:`GramianWeighting`, ``None`` or an array (to be ignored) for the others.
      losses: (T,) the task losses of this step.
      key: a PRNG key for this step, identical on every device (in representation mode a
        :class:`JacobianAggregator` gets a key folded with the device index).
      step: the integer step counter.
    """

    gramian: jax.Array | None
    losses: jax.Array
    key: jax.Array
    step: jax.Array


class EmptyState(NamedTuple):
    """The state of a stateless method: no arrays (equal to ``()``)."""


class JacobianUpdate(NamedTuple):
    """What ``JacobianAggregator.combine`` returns.

    Attributes:
      direction: the update, with the structure of one row of J.
      weights: (T,) w with ``direction = Jᵀw``, or NaN where the direction is no such
        combination (GradDrop, TrimmedMean).
      state: the method's new state.
    """

    direction: PyTree
    weights: jax.Array
    state: PyTree


WeighFn = Callable[[WeightingInputs, PyTree], tuple[jax.Array, PyTree]]
CombineFn = Callable[[PyTree, WeightingInputs, PyTree], JacobianUpdate]


class GramianWeighting(NamedTuple):
    """Weights from the Gramian: ``weigh(inputs, state) -> (w (T,), new state)``, d = Jᵀw.

    Attributes:
      name: the registry name.
      init: ``num_tasks -> state``.
      weigh: reads ``inputs.gramian`` (always given), may read the losses, key and step.
      modes: the train-step modes supported (MGDA-UB: only ``"representation"``).
    """

    name: str
    init: Callable[[int], PyTree]
    weigh: WeighFn
    modes: tuple[str, ...] = MODES


class LossWeighting(NamedTuple):
    """Weights from the losses alone: ``weigh(inputs, state) -> (w (T,), new state)``, d = Jᵀw.

    ``weigh`` must not read ``inputs.gramian``: the step gives none unless gradient
    statistics are asked for. Supports every mode.

    Attributes:
      name: the registry name.
      init: ``num_tasks -> state``.
      weigh: reads ``inputs.losses`` (and may read the key and step).
    """

    name: str
    init: Callable[[int], PyTree]
    weigh: WeighFn

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES


class UniformWeighting(NamedTuple):
    """The same weight c for every task, ``w = c·1`` with ``c = weight(num_tasks)``; stateless.

    The step back-propagates the summed loss once and scales the shared gradient by c.
    ``init`` and ``weigh`` exist so that it can also run where weights are formed
    (gradient statistics). Supports every mode.

    Attributes:
      name: the registry name.
      weight: ``num_tasks -> c`` (may raise a ValueError for a wrong task count).
    """

    name: str
    weight: Callable[[int], float]

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES

    def init(self, num_tasks: int) -> EmptyState:
        self.weight(num_tasks)  # checks the task count
        return EmptyState()

    def weigh(self, inputs: WeightingInputs, state: PyTree) -> tuple[jax.Array, PyTree]:
        num_tasks = inputs.losses.shape[0]
        return jnp.full((num_tasks,), self.weight(num_tasks), inputs.losses.dtype), state


class JacobianAggregator(NamedTuple):
    """A direction from the Jacobian itself: ``combine(jacobian, inputs, state) -> JacobianUpdate``.

    ``jacobian`` is a pytree whose leaves carry a leading task axis (row t = g_t); the
    direction has the structure of one row. In representation mode the rows are this
    device's examples and ``inputs.key`` is folded with the device index.

    Attributes:
      name: the registry name.
      init: ``(num_tasks, shared_params) -> state``; ``shared_params`` gives the shapes of
        state that tracks the gradients (MoCo), others ignore it.
      combine: the direction, the weights (NaN if none) and the new state.
      modes: the train-step modes supported (state shaped like the parameters: ``("full",)``).
    """

    name: str
    init: Callable[[int, PyTree], PyTree]
    combine: CombineFn
    modes: tuple[str, ...] = MODES


class MetaInputs(NamedTuple):
    """What a :class:`MetaWeighting` sees in one step (``mtl_jax.aggregators.lookahead``).

    Attributes:
      loss_fn: ``(params, batch) -> (T,)`` the global task losses (all-reduced over devices) of
        the whole parameter pytree on a batch; differentiable, so a method can take a
        look-ahead step and differentiate through it.
      params: ``{"shared": ..., "tasks": ...}``, replicated.
      batch: this device's rows of the training (lower-level) batch.
      meta_batch: this device's rows of the meta (upper-level) batch, drawn apart from the
        training batch (``mtl_jax.data.meta``).
      key: a PRNG key for this step, identical on every device.
      step: the integer step counter.
    """

    loss_fn: Callable[[PyTree, PyTree], jax.Array]
    params: PyTree
    batch: PyTree
    meta_batch: PyTree
    key: jax.Array
    step: jax.Array


class MetaUpdate(NamedTuple):
    """What ``MetaWeighting.update`` returns.

    Attributes:
      grads: shaped like ``params``: what the optimiser receives.
      losses: (T,) the task losses of the training batch at ``params``.
      weights: (T,) the task weights the method applied (its docstring says to what).
      state: the method's new state.
    """

    grads: PyTree
    losses: jax.Array
    weights: jax.Array
    state: PyTree


class MetaWeighting(NamedTuple):
    """Meta-learned weights (Auto-Lambda, MOML, FORUM): ``update(inputs, state) -> MetaUpdate``.

    The method receives the loss function, the parameters and two batches (training and meta),
    so it can take a look-ahead step inside the compiled step and differentiate through it;
    it returns the gradient of every parameter. Full mode only: the look-ahead moves all the
    parameters.

    Attributes:
      name: the registry name.
      init: ``num_tasks -> state``.
      update: the gradients, the training losses, the weights and the new state.
      modes: ``("full",)``.
    """

    name: str
    init: Callable[[int], PyTree]
    update: Callable[[MetaInputs, PyTree], MetaUpdate]
    modes: tuple[str, ...] = ("full",)


Aggregator = Union[GramianWeighting, LossWeighting, UniformWeighting, JacobianAggregator, MetaWeighting]
KINDS = (GramianWeighting, LossWeighting, UniformWeighting, JacobianAggregator, MetaWeighting)


def initial_state(aggregator: Aggregator, num_tasks: int, shared_params: PyTree) -> PyTree:
    """The aggregator's state at step 0 (a Jacobian aggregator also sees the shared params)."""
    if isinstance(aggregator, JacobianAggregator):
        return aggregator.init(num_tasks, shared_params)
    return aggregator.init(num_tasks)


def no_state(num_tasks: int) -> EmptyState:
    """``init`` of a stateless weighting."""
    del num_tasks
    return EmptyState()


def no_jacobian_state(num_tasks: int, shared_params: PyTree) -> EmptyState:
    """``init`` of a stateless Jacobian aggregator."""
    del num_tasks, shared_params
    return EmptyState()


def float_dtype(x: jax.Array):
    """``x``'s dtype if floating, else float32 (weights follow the losses' precision)."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32

"""The compiled multi-task train step: ``state, metrics = train_step(state, batch)``.

Per step, on every device of the ``data`` mesh axis (``jax.shard_map``):

1. the T task gradients, reduced over devices (``mtl_jax.surgery.jacobian``):
   - mode ``"full"``: of the shared parameters, J ∈ R^{T×P};
   - mode ``"representation"``: of the shared representation z of the whole global batch
     (each device holds its examples' rows; the Gramian is all-reduced);
   - mode ``"instance"``: the B·T per-example losses on the representation path, weighed
     from their (B·T)×(B·T) Gramian over the global batch (``mtl_jax.surgery.instance``);
2. G = J Jᵀ and the aggregator's weights w (identical on every device);
3. the update direction: full mode Jᵀw; representation mode one backward pass of the trunk
   with the combined cotangent Σ_t w_t ∂L_t/∂z (docs/design.md, "Modes");
4. task-specific parameters get their own plain gradients; one optax update.

The aggregator's kind (``mtl_jax.aggregators.kinds``) picks the path, and every path returns
a :class:`StepResult`:

- ``GramianWeighting``: steps 1–4 as above; in representation mode, when every head is a
  dense layer on z, G comes from the heads' output gradients and the T rows are never formed
  (``mtl_jax.surgery.linear_heads``);
- ``JacobianAggregator`` (GradDrop, TrimmedMean, MoCo, …): its ``combine`` receives J itself
  and replaces steps 2–3;
- ``UniformWeighting`` (EW): one backward pass of the summed loss gives the same update;
- ``LossWeighting`` (RLW, UW, DWA, FAMO, GLS, STCH, …): one forward pass, the weights from
  the losses, then ONE trunk backward pass with the cotangent Σ_t w_t ∂L_t/∂z (the heads are
  back-propagated twice, once with w for the trunk and once with 1 for their own plain
  gradients) — in both modes, at about the cost of EW.

- ``MetaWeighting`` (Auto-Lambda, MOML, FORUM): a look-ahead step on the batch, judged on its
  meta batch (``"meta/"`` keys), returns every gradient (``mtl_jax.surgery.meta_step``).

Gradient statistics need the Gramian, so when they are asked for the last two kinds take the
Jacobian path too (their weights do not change). The Gramian is formed only when the
aggregator reads it or gradient statistics are asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec

from mtl_jax.aggregators.gramian import gramian, weighted_sum
from mtl_jax.aggregators.kinds import (
    KINDS,
    MODES,
    Aggregator,
    GramianWeighting,
    JacobianAggregator,
    JacobianUpdate,
    LossWeighting,
    MetaWeighting,
    Mode,
    UniformWeighting,
    WeightingInputs,
)
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.parallel import DATA_AXIS, check_divisible, global_batch_size, shard_batch
from mtl_jax.surgery import jacobian
from mtl_jax.surgery.gramian_engine import engine_full_step
from mtl_jax.surgery.gradient_stats import gradient_statistics, layer_gramians
from mtl_jax.surgery.meta_step import meta_step
from mtl_jax.surgery.instance import INSTANCE, instance_refusal, instance_step, supported_modes
from mtl_jax.surgery.linear_heads import linear_heads_gramian
from mtl_jax.surgery.state import TrainState
from mtl_jax.types import PyTree

PER_LAYER = "per_layer"
MODES = (*MODES, INSTANCE)  # the task modes of the aggregators, and instance mode (surgery/instance.py)

__all__ = ["MODES", "Mode", "StepResult", "TrainStep", "make_train_step"]


class StepResult(NamedTuple):
    """What a path of the step computes before the optimiser update.

    Attributes:
      grads: ``{"shared": direction, "tasks": plain head gradients}``, shaped like the params.
      losses: (T,) the task losses.
      weights: (T,) the task weights (NaN for element-wise Jacobian aggregators).
      gramian: (T, T) G, or ``None`` where the path did not form it.
      aggregator_state: the aggregator's new state.
      layer_gramians: ``{module: G^(m)}`` of the shared trunk's top-level modules (they sum
        to G), when per-layer statistics are asked for; else ``None``.
    """

    grads: PyTree
    losses: jax.Array
    weights: jax.Array
    gramian: jax.Array | None
    aggregator_state: PyTree
    layer_gramians: dict[str, jax.Array] | None = None


def _step_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """(aggregator key, model key): the first identical on every device, the second per device."""
    aggregator_key, model_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    return aggregator_key, jax.random.fold_in(model_key, jax.lax.axis_index(DATA_AXIS))


def _uniform_step(model, aggregator: UniformWeighting, state, batch, rng) -> StepResult:
    """w = c·1: one backward pass of Σ_t L_t, the shared gradient scaled by c."""
    losses, grads = jacobian.summed_gradients(model, state.params, batch, rng, DATA_AXIS)
    scale = aggregator.weight(losses.shape[0])
    grads = {"shared": jax.tree.map(lambda g: g * scale, grads["shared"]), "tasks": grads["tasks"]}
    weights = jnp.full_like(losses, scale)
    return StepResult(grads, losses, weights, None, state.aggregator_state)


def _loss_weighted_step(model, aggregator: LossWeighting, state, batch, rng, agg_key) -> StepResult:
    """Loss weightings: forward, w from the losses, one trunk VJP of Σ_t w_t L_t."""
    params = state.params
    z, trunk_vjp = jax.vjp(lambda shared: model.encode(shared, batch, rng), params["shared"])

    def losses_of(tasks: PyTree, features: jax.Array) -> jax.Array:
        return jacobian.global_task_losses(model, tasks, features, batch, rng, DATA_AXIS)

    losses, heads_vjp = jax.vjp(losses_of, params["tasks"], z)
    inputs = WeightingInputs(gramian=None, losses=losses, key=agg_key, step=state.step)
    weights, agg_state = aggregator.weigh(inputs, state.aggregator_state)
    weights = jax.lax.stop_gradient(weights).astype(losses.dtype)
    task_grads, _ = heads_vjp(jnp.ones_like(losses))
    _, z_cotangent = heads_vjp(weights)
    (shared_grads,) = trunk_vjp(z_cotangent)
    return StepResult({"shared": shared_grads, "tasks": task_grads}, losses, weights, None, agg_state)


def _direction(aggregator: Aggregator, rows, gram, losses, key, state) -> JacobianUpdate:
    """(d, w, new aggregator state): ``combine`` on J, or w = weigh(G) and d = Jᵀw."""
    inputs = WeightingInputs(gramian=gram, losses=losses, key=key, step=state.step)
    if isinstance(aggregator, JacobianAggregator):
        return JacobianUpdate(*aggregator.combine(rows, inputs, state.aggregator_state))
    weights, agg_state = aggregator.weigh(inputs, state.aggregator_state)
    return JacobianUpdate(weighted_sum(weights, rows), weights, agg_state)


def _full_step(model, aggregator, state, batch, rng, agg_key, chunk, want_gramian, per_layer=False) -> StepResult:
    jac = jacobian.full_jacobian(model, state.params, batch, rng, DATA_AXIS, chunk)
    layers = layer_gramians(jac.shared) if per_layer else None  # Σ_m G^(m) = G: no extra pass
    gram = sum(layers.values()) if per_layer else gramian(jac.shared) if want_gramian else None
    update = _direction(aggregator, jac.shared, gram, jac.losses, agg_key, state)
    grads = {"shared": update.direction, "tasks": jac.tasks}
    return StepResult(grads, jac.losses, update.weights, gram, update.state, layers)


def _linear_heads_step(model, aggregator: GramianWeighting, state, batch, rng, agg_key) -> StepResult:
    """Representation mode with dense heads: G from the heads' output gradients, the rows
    ∂L_t/∂z never formed (surgery/linear_heads.py)."""
    losses_of_outputs = lambda outputs: jacobian.global_losses_of_outputs(model, outputs, batch, DATA_AXIS)
    heads = linear_heads_gramian(model, state.params, batch, rng, DATA_AXIS, losses_of_outputs)
    inputs = WeightingInputs(gramian=heads.gramian, losses=heads.losses, key=agg_key, step=state.step)
    weights, agg_state = aggregator.weigh(inputs, state.aggregator_state)
    (shared_grads,) = heads.trunk_vjp(heads.z_cotangent(jax.lax.stop_gradient(weights)))
    return StepResult({"shared": shared_grads, "tasks": heads.tasks}, heads.losses, weights, heads.gramian, agg_state)


def _representation_step(model, aggregator, state, batch, rng, agg_key, chunk, want_gramian) -> StepResult:
    if isinstance(aggregator, GramianWeighting) and model.linear_heads and chunk is None:
        return _linear_heads_step(model, aggregator, state, batch, rng, agg_key)
    jac = jacobian.representation_jacobian(model, state.params, batch, rng, DATA_AXIS, chunk)
    gram = jax.lax.psum(gramian(jac.representation), DATA_AXIS) if want_gramian else None
    if isinstance(aggregator, JacobianAggregator):  # element-wise on this device's rows: its own draws
        agg_key = jax.random.fold_in(agg_key, jax.lax.axis_index(DATA_AXIS))
    update = _direction(aggregator, jac.representation, gram, jac.losses, agg_key, state)
    (shared_grads,) = jac.trunk_vjp(update.direction)
    grads = {"shared": shared_grads, "tasks": jac.tasks}
    return StepResult(grads, jac.losses, update.weights, gram, update.state)


def _aggregated_gradients(
    model: MultiTaskModel,
    aggregator: Aggregator,
    state: TrainState,
    batch: PyTree,
    rng: jax.Array,
    agg_key: jax.Array,
    *,
    mode: Mode,
    gradient_stats: bool | str,
    jacobian_chunk: int | None,
    gramian_engine: bool = True,
) -> StepResult:
    """The path for the aggregator's kind (module docstring); per-layer statistics take the
    materialised Jacobian in full mode."""
    want_gramian = isinstance(aggregator, GramianWeighting) or bool(gradient_stats)
    if mode == INSTANCE:  # Gramian weightings only (make_train_step checks)
        return StepResult(*instance_step(
            model, aggregator, state.params, state.aggregator_state, state.step, batch, rng, agg_key, DATA_AXIS,
        )[:5])
    if isinstance(aggregator, MetaWeighting):  # look-ahead on a meta batch (surgery/meta_step.py)
        return StepResult(*meta_step(model, aggregator, state, batch, rng, agg_key, DATA_AXIS,
                                     want_gramian=bool(gradient_stats), per_layer=gradient_stats == PER_LAYER))
    if gradient_stats == PER_LAYER:
        return _full_step(model, aggregator, state, batch, rng, agg_key, jacobian_chunk, True, per_layer=True)
    match aggregator:
        case GramianWeighting() if mode == "full" and gramian_engine and jacobian_chunk is None:
            return StepResult(*engine_full_step(
                model, aggregator, state.params, state.aggregator_state, state.step, batch, rng,
                agg_key, DATA_AXIS, jacobian.global_task_losses,
            ))
        case UniformWeighting() if not gradient_stats:
            return _uniform_step(model, aggregator, state, batch, rng)
        case LossWeighting() if not gradient_stats:
            return _loss_weighted_step(model, aggregator, state, batch, rng, agg_key)
        case _ if mode == "full":
            return _full_step(model, aggregator, state, batch, rng, agg_key, jacobian_chunk, want_gramian)
        case _:
            return _representation_step(
                model, aggregator, state, batch, rng, agg_key, jacobian_chunk, want_gramian
            )


def _local_train_step(
    state: TrainState,
    batch: PyTree,
    *,
    model: MultiTaskModel,
    aggregator: Aggregator,
    optimizer: optax.GradientTransformation,
    mode: Mode,
    gradient_stats: bool | str,
    jacobian_chunk: int | None,
    gramian_engine: bool = True,
) -> tuple[TrainState, dict[str, jax.Array]]:
    agg_key, model_key = _step_keys(state)
    result = _aggregated_gradients(
        model, aggregator, state, batch, model_key, agg_key,
        mode=mode, gradient_stats=gradient_stats, jacobian_chunk=jacobian_chunk,
        gramian_engine=gramian_engine,
    )
    updates, opt_state = optimizer.update(result.grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        aggregator_state=result.aggregator_state,
    )
    metrics = {"loss": result.losses, "weights": result.weights}
    if gradient_stats:  # only when asked: an unused Gramian is then dropped by XLA
        metrics.update(gradient_statistics(result.gramian))
    if result.layer_gramians is not None:
        metrics["layer_stats"] = {module: gradient_statistics(g) for module, g in result.layer_gramians.items()}
    return new_state, metrics


class TrainStep:
    """``state, metrics = step(state, batch)``, compiled once, state donated.

    ``batch`` may be host arrays (this process's slice of the global batch; they are checked
    and placed on the mesh) or arrays already placed with :func:`shard_batch`. Keep using the
    returned state: the argument's buffers are donated.
    """

    def __init__(self, jitted, mesh: Mesh):
        self.jitted = jitted
        self.mesh = mesh

    def place_batch(self, batch: PyTree) -> dict[str, jax.Array]:
        if all(isinstance(v, jax.Array) for v in batch.values()):
            check_divisible(global_batch_size(batch), self.mesh)
            return batch
        return shard_batch(batch, self.mesh)

    def __call__(self, state: TrainState, batch: PyTree) -> tuple[TrainState, dict]:
        return self.jitted(state, self.place_batch(batch))


def make_train_step(
    model: MultiTaskModel,
    aggregator: Aggregator,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    *,
    mode: Mode = "full",
    gradient_stats: bool = True,
    jacobian_chunk: int | None = None,
    gramian_engine: bool = True,
) -> TrainStep:
    """Build the data-parallel train step.

    Args:
      model: the pure multi-task model.
      aggregator: how task gradients become one update.
      optimizer: optax transformation over the whole ``params`` pytree.
      mesh: a mesh with a ``data`` axis (``mtl_jax.parallel.data_mesh``).
      mode: ``"full"`` (surgery on the shared parameters' gradients) or ``"representation"``
        (on the gradients of the shared representation). Methods whose state is shaped like
        the gradients (MoCo, ExcessMTL, DB-MTL) support only ``"full"`` and MGDA-UB only
        ``"representation"`` (the aggregator's ``modes``); others raise a ValueError.
        ``"instance"`` weighs the B·T per-example objectives (``mtl_jax.surgery.instance``;
        stateless Gramian weightings only).
      gradient_stats: report gradient norms, cosines and conflicts (forces the Jacobian for
        uniform and loss weightings); ``"per_layer"`` also per top-level module of the shared
        trunk (full mode; materialises J).
      jacobian_chunk: ``None`` back-propagates all T cotangents at once (``vmap``); an
        integer k processes k at a time (``lax.map``) to cap memory.
      gramian_engine: in full mode, Gramian weightings form G layer by layer and d = Jᵀw
        without holding J (``mtl_jax.surgery.gramian_engine``); ``False`` materialises J
        (for comparison). Ignored when ``jacobian_chunk`` is set.
    """
    if not isinstance(aggregator, KINDS):
        raise TypeError(
            f"make_train_step needs an aggregator of one of the kinds "
            f"{', '.join(kind.__name__ for kind in KINDS)}, got {type(aggregator).__name__}"
        )
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; accepted values: {', '.join(MODES)}")
    if mode == INSTANCE and instance_refusal(aggregator):
        raise ValueError(f"aggregator {aggregator.name!r} cannot run in mode 'instance': {instance_refusal(aggregator)}")
    if mode not in supported_modes(aggregator):
        raise ValueError(
            f"aggregator {aggregator.name!r} does not support mode {mode!r}; supported: "
            f"{', '.join(aggregator.modes)} (see its module docstring for why)"
        )
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs a {DATA_AXIS!r} axis, got axes {mesh.axis_names}")
    if gradient_stats not in (True, False, PER_LAYER):
        raise ValueError(f"gradient_stats must be True, False or {PER_LAYER!r}, got {gradient_stats!r}")
    if gradient_stats == PER_LAYER and mode != "full":
        raise ValueError(
            f"gradient_stats={PER_LAYER!r} needs mode 'full' (in representation mode the Gramian is"
            " over z, not the trunk's parameters); set mode='full' or gradient_stats=True"
        )

    def local_step(state, batch):
        return _local_train_step(
            state,
            batch,
            model=model,
            aggregator=aggregator,
            optimizer=optimizer,
            mode=mode,
            gradient_stats=gradient_stats,
            jacobian_chunk=jacobian_chunk,
            gramian_engine=gramian_engine,
        )

    sharded = jax.shard_map(
        local_step,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)),
        out_specs=(PartitionSpec(), PartitionSpec()),
    )
    return TrainStep(jax.jit(sharded, donate_argnums=0), mesh)

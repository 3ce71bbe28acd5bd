"""The step's path for meta weightings (Auto-Lambda, MOML, FORUM; ``MetaWeighting``).

The batch carries its meta batch under ``"meta/"`` keys (``mtl_jax.data.meta``); both are
this device's rows. The method receives the loss function of the whole parameter pytree —
the global task losses, totals and counts all-reduced over the ``data`` axis, with this
step's model key — and returns the gradient of every parameter: it may take look-ahead steps
and differentiate through them, all inside the compiled step. Every gradient of a replicated
parameter through those losses is already the global one (docs/design.md, "Data
parallelism"), so N devices compute what one does on the same global batches.

A batch without a meta batch (a step driven by hand, not by ``Experiment.train_batches``)
uses the training batch as its own meta batch: the look-ahead is then judged in-sample.

Gradient statistics, when asked for, come from the Jacobian of the training batch at θ
(one extra batched backward pass).
"""

from __future__ import annotations

import jax

from mtl_jax.aggregators.gramian import gramian
from mtl_jax.aggregators.kinds import MetaInputs, MetaWeighting
from mtl_jax.data.meta import split_meta
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.surgery import jacobian
from mtl_jax.surgery.gradient_stats import layer_gramians
from mtl_jax.surgery.state import TrainState
from mtl_jax.types import PyTree


def meta_step(
    model: MultiTaskModel,
    aggregator: MetaWeighting,
    state: TrainState,
    batch: PyTree,
    rng: jax.Array,
    agg_key: jax.Array,
    axis_name: str,
    *,
    want_gramian: bool,
    per_layer: bool,
) -> tuple:
    """(grads, losses, weights, gramian or None, new aggregator state, layer Gramians or None)."""
    main, meta = split_meta(batch)
    meta = main if meta is None else meta

    def loss_fn(params: PyTree, rows: PyTree) -> jax.Array:
        z = model.encode(params["shared"], rows, rng)
        return jacobian.global_task_losses(model, params["tasks"], z, rows, rng, axis_name)

    inputs = MetaInputs(loss_fn, state.params, main, meta, agg_key, state.step)
    update = aggregator.update(inputs, state.aggregator_state)
    gram, layers = None, None
    if want_gramian or per_layer:
        jac = jacobian.full_jacobian(model, state.params, main, rng, axis_name)
        layers = layer_gramians(jac.shared) if per_layer else None
        gram = sum(layers.values()) if per_layer else gramian(jac.shared)
    return update.grads, update.losses, update.weights, gram, update.state, layers

"""The Gramian engine: G = J Jᵀ of the shared parameters layer by layer, never holding J.

For the Gramian-level weightings in full mode (PCGrad, MGDA, UPGrad, …) the step needs
G = J Jᵀ ∈ R^{T×T} and then d = Jᵀ w (docs/design.md; /work/shared/design/gramian.md,
"Never holding J"). Two facts avoid forming J ∈ R^{T×P}:

1. G decomposes over parameter leaves, G = Σ_l J_l J_lᵀ;
2. a leaf W used only as one operand of matrix products y_u = X_u · W (dense layers,
   attention projections, experts; through a dtype cast too) has the per-task gradient
   J_{W,t} = Σ_u X_uᵀ Δ_{u,t}, with Δ_{u,t} = ∂L_t/∂y_u. So its Gramian block is either
       (a) ⟨Σ_u X_uᵀΔ_{u,s}, Σ_u X_uᵀΔ_{u,t}⟩           ≈ T·N·K·M flops (per-leaf Jacobian), or
       (b) ⟨Δ_s, (X Xᵀ) Δ_t⟩ over the stacked rows     ≈ N²·K + N²·T·M flops (Gram trick),
   with X ∈ R^{N×K} the rows of all uses, Δ_t ∈ R^{N×M}; the cheaper is chosen statically.
   The direction of that leaf is d_W = Xᵀ Δ^w, with Δ^w the output-gradient of one more
   backward pass of the trunk with the combined cotangent Σ_t w_t ∂L_t/∂z (the default:
   each Δ_t can be freed once its block is formed), or Δ^w = Σ_t w_t Δ_t from the held Δ_t
   (``hold_deltas=True``: no second pass, T × the tapped outputs alive until w is known).

How the layers are found (the model is written as usual): ``model.encode`` is traced to a
jaxpr; every ``dot_general`` with a shared parameter as one operand (directly or through
``convert_element_type``) and an activation as the other is a *site*. A parameter all of
whose uses are sites is *tapped*: the jaxpr is re-evaluated with a zero-valued additive tap
on each of its sites' outputs and the activation operands X_u saved. One batched VJP over the
T one-hot cotangents, with respect to the taps and the untapped shared parameters (biases,
norms, convolution kernels, embedding tables, weights inside scans), gives every Δ_{u,t} and
the untapped leaves' T gradients, whose block is contracted as in (a). The tapped
parameters' weight gradients are never formed for G.

Data parallelism (inside ``shard_map``): the task losses are global means, so an untapped
leaf's gradient comes out globally reduced (the transpose of its implicit broadcast is a
psum). The taps vary over the data axis like the outputs they are added to (a replicated
tap would all-reduce its cotangent). The Δ and X of a site are local rows; the Gram trick over local rows would miss the
cross-device terms, so with more than one device every tapped leaf takes (a) with its T
local gradients psum'd before the contraction; the direction is psum'd likewise.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import Batch, PyTree

_HIGHEST = jax.lax.Precision.HIGHEST
_CALL_PRIMITIVES = ("jit", "pjit", "closed_call", "core_call")
# value-preserving ops a parameter may pass through on its way to a product: a dtype cast,
# and shard_map's marking of a replicated value as varying over the data axis
_PASS_THROUGH = ("convert_element_type", "pvary", "copy", "copy_p")


class Site(NamedTuple):
    """One product y = X·W of a shared leaf W (operand ``param_side`` of the dot_general)."""

    leaf: int
    param_side: int  # 0: W is the lhs, 1: W is the rhs
    act_free: tuple[int, ...]  # X's dims that survive (rows)
    act_contract: tuple[int, ...]  # X's contracted dims, ordered like W's
    param_contract: tuple[int, ...]  # W's contracted dims, sorted
    param_free: tuple[int, ...]  # W's other dims, sorted
    out_shape: tuple[int, ...]
    out_dtype: Any
    out_varying: tuple[str, ...]  # mesh axes the output varies over (inside shard_map)


class _Trace(NamedTuple):
    sites: list[Site]
    untappable: set[int]  # leaves with at least one use that is not a site


def _varying_axes(aval) -> tuple[str, ...]:
    """The mesh axes a value varies over inside ``shard_map`` (empty outside one)."""
    manual = getattr(aval, "manual_axis_type", None)
    axes = getattr(manual, "varying", None) if manual is not None else getattr(aval, "vma", None)
    return tuple(sorted(axes or ()))


def _site_of(eqn, tags: list[int | None]) -> Site | None:
    """The site if ``eqn`` is a dot_general of one tagged (parameter) operand, else None."""
    if eqn.primitive.name != "dot_general" or (tags[0] is None) == (tags[1] is None):
        return None
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    if lhs_batch or rhs_batch:
        return None
    side = 0 if tags[0] is not None else 1
    param_c, act_c = (lhs_contract, rhs_contract) if side == 0 else (rhs_contract, lhs_contract)
    pairs = sorted(zip(param_c, act_c))
    param_ndim = eqn.invars[side].aval.ndim
    act_ndim = eqn.invars[1 - side].aval.ndim
    out = eqn.outvars[0].aval
    return Site(
        leaf=tags[side],
        param_side=side,
        act_free=tuple(d for d in range(act_ndim) if d not in act_c),
        act_contract=tuple(a for _, a in pairs),
        param_contract=tuple(p for p, _ in pairs),
        param_free=tuple(d for d in range(param_ndim) if d not in param_c),
        out_shape=tuple(out.shape),
        out_dtype=out.dtype,
        out_varying=_varying_axes(out),
    )


def _read(env: dict, var):
    return var.val if isinstance(var, jcore.Literal) else env[var]


def _inner_jaxpr(eqn):
    """(jaxpr, consts) of a call primitive's body."""
    inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    return (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, ())


def _tags_in(eqn, tag_of: dict) -> list[int | None]:
    return [None if isinstance(v, jcore.Literal) else tag_of.get(v) for v in eqn.invars]


def _analyse(jaxpr, tags, record: _Trace) -> None:
    """Record the sites of ``jaxpr`` in evaluation order and the leaves used elsewhere.

    ``tags`` gives, per input, the shared leaf it is (or a cast of), or None. Calls (jit)
    that receive a tagged value are entered, as :func:`_evaluate` inlines them.
    """
    tag_of = {var: tag for var, tag in zip(jaxpr.invars, tags) if tag is not None}
    for eqn in jaxpr.eqns:
        in_tags = _tags_in(eqn, tag_of)
        if all(t is None for t in in_tags):
            continue
        if eqn.primitive.name in _CALL_PRIMITIVES:
            inner, _ = _inner_jaxpr(eqn)
            inner_record = _Trace([], set())
            _analyse(inner, in_tags, inner_record)
            record.sites.extend(inner_record.sites)
            record.untappable.update(inner_record.untappable)
            for var in inner.outvars:  # a tagged value returned by the call
                if not isinstance(var, jcore.Literal) and var in inner.invars:
                    tag = in_tags[inner.invars.index(var)]
                    if tag is not None:
                        record.untappable.add(tag)
        elif eqn.primitive.name in _PASS_THROUGH and len(eqn.invars) == 1:
            tag_of[eqn.outvars[0]] = in_tags[0]
        else:
            site = _site_of(eqn, in_tags)
            if site is None:
                record.untappable.update(t for t in in_tags if t is not None)
            else:
                record.sites.append(site)
    for var in jaxpr.outvars:
        if not isinstance(var, jcore.Literal) and var in tag_of:
            record.untappable.add(tag_of[var])  # a parameter returned as it is


def _bind(eqn, invals) -> list:
    with eqn.ctx.manager:
        outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(outs) if eqn.primitive.multiple_results else [outs]


def _evaluate(jaxpr, consts, args, tags, taps: list, state: dict, tapped: frozenset) -> list:
    """Evaluate ``jaxpr`` like ``jax.core.eval_jaxpr``, with the taps of :func:`_analyse`.

    The k-th site of a ``tapped`` leaf (in the order of :func:`_analyse`) gets ``taps[k]``
    added to its output, and its activation operand is appended to ``state["x"]``.
    """
    env: dict = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    tag_of = {var: tag for var, tag in zip(jaxpr.invars, tags) if tag is not None}
    for eqn in jaxpr.eqns:
        in_tags = _tags_in(eqn, tag_of)
        invals = [_read(env, v) for v in eqn.invars]
        site = None
        if any(t is not None for t in in_tags) and eqn.primitive.name in _CALL_PRIMITIVES:
            inner, inner_consts = _inner_jaxpr(eqn)
            outs = _evaluate(inner, inner_consts, invals, in_tags, taps, state, tapped)
        else:
            outs = _bind(eqn, invals)
            if eqn.primitive.name in _PASS_THROUGH and len(eqn.invars) == 1 and in_tags[0] is not None:
                tag_of[eqn.outvars[0]] = in_tags[0]
            else:
                site = _site_of(eqn, in_tags)
        if site is not None and site.leaf in tapped:
            outs = [outs[0] + taps[state["tapped"]]]
            state["tapped"] += 1
            state["x"].append(invals[1 - site.param_side])
        env.update(zip(eqn.outvars, outs))
    return [_read(env, v) for v in jaxpr.outvars]


class Plan(NamedTuple):
    """What the engine found in ``encode``: the tapped leaves and their sites."""

    closed: Any  # ClosedJaxpr of encode(leaves, batch, rng)
    out_tree: Any
    sites: tuple[Site, ...]  # sites of tapped leaves, in evaluation order
    tapped: frozenset[int]
    num_leaves: int


def plan_encode(encode: Callable, shared_leaves: list, treedef, batch: Batch, rng) -> Plan:
    """Trace ``encode`` and decide which shared leaves are tapped (module docstring)."""

    def flat_encode(leaves, batch, rng):
        return encode(jax.tree.unflatten(treedef, leaves), batch, rng)

    closed, out_shape = jax.make_jaxpr(flat_encode, return_shape=True)(shared_leaves, batch, rng)
    record = _Trace([], set())
    num_args = len(closed.jaxpr.invars)
    _analyse(closed.jaxpr, list(range(len(shared_leaves))) + [None] * (num_args - len(shared_leaves)), record)
    tapped = frozenset(s.leaf for s in record.sites) - record.untappable
    sites = tuple(s for s in record.sites if s.leaf in tapped)
    return Plan(closed, jax.tree.structure(out_shape), sites, tapped, len(shared_leaves))


def _feature_gradients_inside(losses_of_features: Callable, z: PyTree, num_tasks: int) -> PyTree:
    """∂L_t/∂z for every leaf of z, stacked as (..., T, D), one backward per task through
    its own head (unrolled: a vmap over one-hot cotangents would run every head T times)."""
    rows = [jax.grad(lambda f, t=t: losses_of_features(f)[t])(z) for t in range(num_tasks)]
    return jax.tree.map(lambda *leaves: _stack_inside(list(leaves)), *rows)


def _task_axis(site: Site) -> int:
    """Where the batched VJP puts the task axis of this site's Δ: just before W's output
    dims when the activation comes first, so that Δ is (rows..., T, M...) — rows-major,
    as the contractions below read it."""
    return len(site.act_free) if site.param_side == 1 else 0


def _zero_tap(site: Site) -> jax.Array:
    """Zeros shaped like the site's output, varying over the same mesh axes: a replicated
    tap would make its cotangent an all-reduce of every device's (different) rows."""
    zeros = jnp.zeros(site.out_shape, site.out_dtype)
    return jax.lax.pcast(zeros, site.out_varying, to="varying") if site.out_varying else zeros


def _stack_inside(rows: list[jax.Array]) -> jax.Array:
    """Per-task (..., D) arrays stacked as (..., T, D): the batched backward then carries
    the task axis next to the features, so every Δ comes out rows-major, (rows, T, M)."""
    return jnp.stack(rows, axis=-2)


def _rows_and_deltas(site: Site, x: jax.Array, delta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """X as (N, K), K in W's contracted-dim order, and Δ as (N, T, M)."""
    x_rows = jnp.transpose(x, site.act_free + site.act_contract)
    n = math.prod(x.shape[d] for d in site.act_free)
    x_rows = x_rows.reshape(n, -1)
    if site.param_side == 1:  # delta = (act free..., T, param free...)
        t = delta.shape[len(site.act_free)]
        return x_rows, delta.reshape(n, t, -1)
    t = delta.shape[0]  # delta = (T, param free..., act free...)
    return x_rows, jnp.transpose(delta.reshape(t, -1, n), (2, 0, 1))


def _to_leaf_layout(site: Site, matrix: jax.Array, leaf_shape: tuple[int, ...]) -> jax.Array:
    """A (..., K, M) gradient back to the leaf's layout."""
    order = site.param_contract + site.param_free
    shape = matrix.shape[:-2] + tuple(leaf_shape[d] for d in order)
    lead = matrix.ndim - 2
    inverse = [order.index(d) + lead for d in range(len(order))]
    return jnp.transpose(matrix.reshape(shape), tuple(range(lead)) + tuple(inverse))


def gram_trick_is_cheaper(rows: int, k: int, m: int, num_tasks: int) -> bool:
    """(b) N²K + N²TM + T²NM flops against (a) TNKM + T²KM (module docstring)."""
    per_leaf = num_tasks * rows * k * m + num_tasks**2 * k * m
    gram = rows**2 * k + rows**2 * num_tasks * m + num_tasks**2 * rows * m
    return gram < per_leaf


def _psum(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _f32(x: jax.Array) -> jax.Array:
    """x in float32, or float64 where it already is (the float64 tests)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _pairwise_sum(left: jax.Array, right: jax.Array) -> jax.Array:
    """Σ_{r,m} left[r, s, m] right[r, t, m] for (R, T, M) arrays: R small T×T products."""
    products = jax.lax.dot_general(left, right, (((2,), (2,)), ((0,), (0,))), precision=_HIGHEST)
    return products.sum(0)


def _block_from_rows(x: jax.Array, delta: jax.Array, use_gram: bool, axis_name: str | None) -> jax.Array:
    """The T×T Gramian block of one tapped leaf from its rows X (N, K) and Δ (N, T, M)."""
    x, delta = _f32(x), _f32(delta)
    n, t, m = delta.shape
    if use_gram:  # single device only: the local rows are all the rows
        kernel = jnp.matmul(x, x.T, precision=_HIGHEST)
        mixed = jnp.matmul(kernel, delta.reshape(n, t * m), precision=_HIGHEST).reshape(n, t, m)
        return _psum(_pairwise_sum(delta, mixed), axis_name)
    jac = jnp.matmul(x.T, delta.reshape(n, t * m), precision=_HIGHEST).reshape(-1, t, m)
    return _pairwise_sum(*(2 * (_psum(jac, axis_name),)))


class EngineResult(NamedTuple):
    losses: jax.Array  # (T,)
    gramian: jax.Array  # (T, T), float32, identical on every device
    direction: Callable[[jax.Array], PyTree]  # weights (T,) -> Jᵀ w over the shared params
    tasks: PyTree  # task-specific gradients (each head: its own task's)
    tapped: int  # how many shared leaves went through the taps (diagnostics)


def gramian_engine(
    model: MultiTaskModel,
    params: PyTree,
    batch: Batch,
    rng: jax.Array | None,
    axis_name: str | None,
    *,
    losses_of: Callable[[PyTree, PyTree], jax.Array],
    hold_deltas: bool = False,
) -> EngineResult:
    """G of the shared parameters' T gradients and a function w ↦ Jᵀw, J never formed.

    ``losses_of(task_params, z)`` maps the representation to the (T,) global task losses
    (``mtl_jax.surgery.jacobian.global_task_losses``). ``axis_name`` is the data axis of
    the enclosing ``shard_map``, or None outside one. ``hold_deltas``: form d = Jᵀw from the
    T output-gradients Δ_t kept from the Gramian pass (fastest; T × the tapped layers'
    outputs stay alive until w is known), or by one more backward pass of the trunk with the
    combined cotangent Σ_t w_t ∂L_t/∂z (each Δ_t freed once its Gramian block is formed).
    """
    leaves, treedef = jax.tree.flatten(params["shared"])
    plan = plan_encode(model.encode, leaves, treedef, batch, rng)
    tapped_ids = sorted(plan.tapped)
    untapped_ids = [i for i in range(plan.num_leaves) if i not in plan.tapped]
    args = jax.tree.leaves((leaves, batch, rng))
    extra = args[plan.num_leaves :]
    tags = list(range(plan.num_leaves)) + [None] * len(extra)

    def encode_tapped(taps, untapped):
        current = list(leaves)
        for i, value in zip(untapped_ids, untapped):
            current[i] = value
        state = {"tapped": 0, "x": []}
        outs = _evaluate(plan.closed.jaxpr, plan.closed.consts, current + extra, tags, taps, state, plan.tapped)
        return jax.tree.unflatten(plan.out_tree, outs), state["x"]

    def encode_and_rows(taps, untapped):
        z, xs = encode_tapped(taps, untapped)
        return z, [jax.lax.stop_gradient(x) for x in xs]

    taps = [_zero_tap(s) for s in plan.sites]
    untapped = [leaves[i] for i in untapped_ids]
    z, trunk_vjp, xs = jax.vjp(encode_and_rows, taps, untapped, has_aux=True)
    losses, heads_vjp = jax.vjp(losses_of, params["tasks"], z)
    num_tasks = losses.shape[0]
    task_grads, _ = heads_vjp(jnp.ones_like(losses))
    z_rows = _feature_gradients_inside(lambda f: losses_of(params["tasks"], f), z, num_tasks)
    in_axes = jax.tree.map(lambda leaf: leaf.ndim - 2, z_rows)
    out_axes = ([_task_axis(s) for s in plan.sites], [0] * len(untapped))
    deltas, jac_untapped = jax.vmap(trunk_vjp, in_axes=(in_axes,), out_axes=out_axes)(z_rows)

    single_device = axis_name is None or jax.lax.axis_size(axis_name) == 1
    rows_of_leaf: dict[int, tuple[jax.Array, jax.Array, Site]] = {}
    for site, x, delta in zip(plan.sites, xs, deltas):
        x_rows, d_rows = _rows_and_deltas(site, x, delta)
        if site.leaf in rows_of_leaf:
            x_prev, d_prev, _ = rows_of_leaf[site.leaf]
            dtype = jnp.promote_types(x_prev.dtype, x_rows.dtype)
            x_rows = jnp.concatenate([x_prev.astype(dtype), x_rows.astype(dtype)], 0)
            d_dtype = jnp.promote_types(d_prev.dtype, d_rows.dtype)
            d_rows = jnp.concatenate([d_prev.astype(d_dtype), d_rows.astype(d_dtype)], 0)
        rows_of_leaf[site.leaf] = (x_rows, d_rows, site)

    gram = jnp.zeros((num_tasks, num_tasks), jnp.promote_types(losses.dtype, jnp.float32))
    for jac in jac_untapped:
        flat = _f32(jac.reshape(num_tasks, -1))
        gram = gram + jnp.matmul(flat, flat.T, precision=_HIGHEST)
    for x_rows, d_rows, _ in rows_of_leaf.values():
        n, k = x_rows.shape
        use_gram = single_device and gram_trick_is_cheaper(n, k, d_rows.shape[2], num_tasks)
        gram = gram + _block_from_rows(x_rows, d_rows, use_gram, axis_name)

    def tapped_direction(out: list, weights: jax.Array, rows_and_deltas) -> None:
        for i, (x_rows, d_rows, site) in rows_and_deltas.items():
            if d_rows.ndim == 3:
                d_rows = jnp.einsum("t,ntm->nm", weights.astype(d_rows.dtype), d_rows)
            grad = jnp.matmul(x_rows.T, d_rows.astype(x_rows.dtype), preferred_element_type=jnp.float32)
            grad = _psum(grad, axis_name)
            out[i] = _to_leaf_layout(site, grad, leaves[i].shape).astype(leaves[i].dtype)

    def direction_from_deltas(weights: jax.Array) -> PyTree:
        weights = jax.lax.stop_gradient(weights)
        out = list(leaves)
        for i, jac in zip(untapped_ids, jac_untapped):
            out[i] = jnp.tensordot(weights.astype(jac.dtype), jac, axes=1, precision=_HIGHEST)
        tapped_direction(out, weights, rows_of_leaf)
        return jax.tree.unflatten(treedef, out)

    def direction_by_backward(weights: jax.Array) -> PyTree:
        weights = jax.lax.stop_gradient(weights)
        _, cotangent = heads_vjp(weights.astype(losses.dtype))
        deltas_w, untapped_w = trunk_vjp(cotangent)
        out = list(leaves)
        for i, grad in zip(untapped_ids, untapped_w):
            out[i] = grad
        rows_w: dict = {}
        for site, x, delta in zip(plan.sites, xs, deltas_w):
            x_rows, d_rows = _rows_and_deltas(site, x, jnp.expand_dims(delta, _task_axis(site)))
            d_rows = d_rows[:, 0]
            if site.leaf in rows_w:
                x_prev, d_prev, _ = rows_w[site.leaf]
                x_rows = jnp.concatenate([x_prev, x_rows.astype(x_prev.dtype)], 0)
                d_rows = jnp.concatenate([d_prev, d_rows.astype(d_prev.dtype)], 0)
            rows_w[site.leaf] = (x_rows, d_rows, site)
        tapped_direction(out, weights, rows_w)
        return jax.tree.unflatten(treedef, out)

    # with no tapped leaf there are no Δ to hold: the weighted sum of the untapped rows is
    # cheaper than one more backward pass (through a scan, say)
    direction = direction_from_deltas if hold_deltas or not plan.sites else direction_by_backward
    return EngineResult(losses, gram, direction, task_grads, len(tapped_ids))


class EngineStep(NamedTuple):
    grads: PyTree  # {"shared": Jᵀw, "tasks": plain head gradients}
    losses: jax.Array
    weights: jax.Array
    gramian: jax.Array
    aggregator_state: PyTree


def engine_full_step(
    model: MultiTaskModel,
    aggregator: GramianWeighting,
    params: PyTree,
    aggregator_state: PyTree,
    step: jax.Array,
    batch: Batch,
    rng: jax.Array | None,
    agg_key: jax.Array,
    axis_name: str,
    losses_of_model: Callable,
    hold_deltas: bool = False,
) -> EngineStep:
    """Full-mode Gramian weighting through the engine: G, w = weigh(G), d = Jᵀw.

    ``losses_of_model(model, task_params, z, batch, rng, axis_name)`` gives the (T,) global
    task losses (``mtl_jax.surgery.jacobian.global_task_losses``).
    """
    result = gramian_engine(
        model, params, batch, rng, axis_name,
        losses_of=lambda tasks, z: losses_of_model(model, tasks, z, batch, rng, axis_name),
        hold_deltas=hold_deltas,
    )
    inputs = WeightingInputs(gramian=result.gramian, losses=result.losses, key=agg_key, step=step)
    weights, agg_state = aggregator.weigh(inputs, aggregator_state)
    grads = {"shared": result.direction(weights), "tasks": result.tasks}
    return EngineStep(grads, result.losses, weights, result.gramian, agg_state)


__all__ = [
    "EngineResult",
    "EngineStep",
    "Plan",
    "Site",
    "engine_full_step",
    "gram_trick_is_cheaper",
    "gramian_engine",
    "plan_encode",
]

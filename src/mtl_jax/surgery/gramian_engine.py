"""The Gramian engine: G = J Jᵀ of the shared parameters layer by layer, never holding J.

For the Gramian-level weightings in full mode (PCGrad, MGDA, UPGrad, …) the step needs
G = J Jᵀ ∈ R^{T×T} and then d = Jᵀ w (docs/design.md, "The Gramian engine"). Two facts
avoid forming J ∈ R^{T×P}:

1. G decomposes over parameter leaves, G = Σ_l J_l J_lᵀ;
2. a leaf W used only as the parameter operand of linear operations y_u = op_u(X_u, W)
   (*sites*) has the per-task gradient J_{W,t} = Σ_u op_uᵀ(X_u, Δ_{u,t}), with
   Δ_{u,t} = ∂L_t/∂y_u, so its Gramian block follows from the X_u and the Δ_{u,t} alone.

The sites and their blocks (N rows: examples, or examples × positions; T tasks):

- **dense** ``dot_general`` y = X W, X ∈ R^{N×K}, Δ_t ∈ R^{N×M}, the cheaper of
    (a) ⟨XᵀΔ_s, XᵀΔ_t⟩                 ≈ T·N·K·M flops (per-leaf Jacobian), or
    (b) ⟨Δ_s, (X Xᵀ) Δ_t⟩               ≈ N²·K + N²·T·M flops (the Gram trick);
- **convolution** ``conv_general_dilated`` (one feature group): the same two forms on the
  im2col view, X the N·H'·W' patches of K = C_in·k_h·k_w inputs (the patch order inside a
  row does not matter: (b) reads only X Xᵀ); (a) is the convolution's own kernel gradient;
- **embedding** ``gather`` of table rows by id (y_n = E[i_n]): the gradient is a scatter-add,
  so the cheaper of
    (a) ⟨S_s, S_t⟩ with S_t = scatter-add of Δ_t into the V rows    ≈ T·V·M + T²·V·M, or
    (b) ⟨Δ_s, K Δ_t⟩ with K_nn' = [i_n = i_n'] (X Xᵀ of the one-hot X) ≈ N²·T·M;
- **bias** ``add`` of a (reshaped, broadcast) parameter b to an activation: the d_in = 1
  case, J_{b,t} = Σ over the broadcast rows of Δ_t. Added to a dense layer's output (and
  nothing else reads that output), b's Δ is the layer's Δ, so with (b) its block joins the
  kernel's as one more column of ones in X, K = X Xᵀ + 1 1ᵀ, and no other reader of Δ is
  needed; otherwise the T × |b| gradients are formed at once and contracted.

The cheaper form is chosen per leaf when the step is traced. The direction of a tapped leaf
is op_uᵀ(X_u, Δ^w_u), with Δ^w the output-gradient of one more backward pass of the trunk
with the combined cotangent Σ_t w_t ∂L_t/∂z (the default: each Δ_t can be freed once its
block is formed), or Δ^w = Σ_t w_t Δ_t from the held Δ_t (``hold_deltas=True``: no second
pass, T × the tapped outputs alive until w is known).

How the sites are found (the model is written as usual): ``model.encode`` is traced to a
jaxpr; a shared leaf followed through value-preserving operations (a dtype cast, shard_map's
``pvary``) to the parameter operand of a ``dot_general``, ``conv_general_dilated`` or
``gather``, or through reshapes and broadcasts to one operand of an ``add``, with an
activation as the other operand, is at a site. A leaf all of whose uses are sites is
*tapped*: the jaxpr is re-evaluated with a zero-valued additive tap on each site's output
and the sites' activation operands saved. One batched VJP over the T one-hot cotangents,
with respect to the taps and the untapped shared parameters (norm scales, weights inside
scans, …), gives every Δ_{u,t} and the untapped leaves' T gradients, whose block is
contracted as in (a). The tapped parameters' weight gradients are never formed for G.
Every Δ comes out task-first, (T, rows…, features…): the layout the batched backward
produces by itself (its ReLU masks put the task axis in front), so the mask, the next layer's
product, the bias sum and the Gram contraction all read one buffer and Δ is never copied.

Data parallelism (inside ``shard_map``): the task losses are global means, so an untapped
leaf's gradient comes out globally reduced (the transpose of its implicit broadcast is a
psum). The taps vary over the data axis like the outputs they are added to (a replicated
tap would all-reduce its cotangent). The Δ and X of a site are local rows; the Gram trick
over local rows would miss the cross-device terms, so with more than one device every
tapped leaf takes (a) with its T local gradients psum'd before the contraction; the
direction is psum'd likewise.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from mtl_jax.aggregators.kinds import GramianWeighting, WeightingInputs
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import Batch, PyTree

_HIGHEST = jax.lax.Precision.HIGHEST
_CALL_PRIMITIVES = ("jit", "pjit", "closed_call", "core_call")
# value-preserving ops a parameter may pass through on its way to a site: a dtype cast, and
# shard_map's marking of a replicated value as varying over the data axis
_PASS_THROUGH = ("convert_element_type", "pvary", "copy", "copy_p")
# linear reshaping ops a bias may pass through on its way to an ``add``
_RESHAPING = ("reshape", "broadcast_in_dim", "squeeze", "expand_dims", "transpose")
DOT, CONV, GATHER, ADD = "dot", "conv", "gather", "add"


class Tag(NamedTuple):
    """A value derived from shared leaf ``leaf`` by the equations ``chain`` (in order)."""

    leaf: int
    chain: tuple = ()
    reshaped: bool = False  # some equation of the chain is in _RESHAPING


class Site(NamedTuple):
    """One linear use y = op(X, W) of a shared leaf W (operand ``param_side`` of ``eqn``)."""

    leaf: int
    param_side: int  # operand index of the parameter in ``eqn``
    act_free: tuple[int, ...]  # dense: X's dims that survive (rows)
    act_contract: tuple[int, ...]  # dense: X's contracted dims, ordered like W's
    param_contract: tuple[int, ...]  # dense: W's contracted dims, sorted
    param_free: tuple[int, ...]  # dense: W's other dims, sorted
    out_shape: tuple[int, ...]
    out_dtype: Any
    out_varying: tuple[str, ...]  # mesh axes the output varies over (inside shard_map)
    kind: str = DOT  # DOT, CONV, GATHER or ADD
    eqn: Any = None  # the equation itself (primitive and parameters)
    chain: tuple = ()  # the equations from the leaf to the parameter operand
    site_id: int = -1  # position among all sites of encode (evaluation order)
    bias_of: int = -1  # a bias: the site_id of the dense site whose output alone it is added to


class _Trace(NamedTuple):
    sites: list[Site]
    untappable: set[int]  # leaves with at least one use that is not a site


def _varying_axes(aval) -> tuple[str, ...]:
    """The mesh axes a value varies over inside ``shard_map`` (empty outside one)."""
    manual = getattr(aval, "manual_axis_type", None)
    axes = getattr(manual, "varying", None) if manual is not None else getattr(aval, "vma", None)
    return tuple(sorted(axes or ()))


def _site(eqn, tag: Tag, side: int, kind: str, dense=((), (), (), ())) -> Site:
    out = eqn.outvars[0].aval
    return Site(tag.leaf, side, *dense, tuple(out.shape), out.dtype, _varying_axes(out),
                kind=kind, eqn=eqn, chain=tag.chain)


def _dot_site(eqn, tags: list[Tag | None]) -> Site | None:
    """y = X·W: a dot_general without batch dims, W one operand, X the other."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    if lhs_batch or rhs_batch:
        return None
    side = 0 if tags[0] is not None else 1
    param_c, act_c = (lhs_contract, rhs_contract) if side == 0 else (rhs_contract, lhs_contract)
    pairs = sorted(zip(param_c, act_c))
    param_ndim = eqn.invars[side].aval.ndim
    act_ndim = eqn.invars[1 - side].aval.ndim
    act_free = tuple(d for d in range(act_ndim) if d not in act_c)
    dense = (
        act_free,
        tuple(a for _, a in pairs),
        tuple(p for p, _ in pairs),
        tuple(d for d in range(param_ndim) if d not in param_c),
    )
    return _site(eqn, tags[side], side, DOT, dense)


def _site_of(eqn, tags: list[Tag | None]) -> Site | None:
    """The site if ``eqn`` is a linear use of one tagged operand by an activation, else None."""
    name = eqn.primitive.name
    tagged = [i for i, t in enumerate(tags) if t is not None]
    if len(tagged) != 1 or len(eqn.invars) != 2 or isinstance(eqn.invars[1 - tagged[0]], jcore.Literal):
        return None
    side, tag = tagged[0], tags[tagged[0]]
    if name == "add":  # a bias: the parameter broadcasts onto the activation, not the reverse
        if tuple(eqn.invars[1 - side].aval.shape) != tuple(eqn.outvars[0].aval.shape):
            return None
        return _site(eqn, tag, side, ADD)
    if tag.reshaped:
        return None
    if name == "dot_general":
        return _dot_site(eqn, tags)
    if name == "conv_general_dilated" and side == 1:
        return _site(eqn, tag, side, CONV)
    if name == "gather" and side == 0:
        return _site(eqn, tag, side, GATHER)
    return None


def _read(env: dict, var):
    return var.val if isinstance(var, jcore.Literal) else env[var]


def _inner_jaxpr(eqn):
    """(jaxpr, consts) of a call primitive's body."""
    inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    return (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, ())


def _tags_in(eqn, tag_of: dict) -> list[Tag | None]:
    return [None if isinstance(v, jcore.Literal) else tag_of.get(v) for v in eqn.invars]


def _passed_tag(eqn, in_tags: list[Tag | None]) -> Tag | None:
    """The tag of the output of a one-input value-preserving or reshaping op of a tagged value."""
    name = eqn.primitive.name
    if len(eqn.invars) != 1 or in_tags[0] is None or name not in _PASS_THROUGH + _RESHAPING:
        return None
    tag = in_tags[0]
    return Tag(tag.leaf, tag.chain + (eqn,), tag.reshaped or name in _RESHAPING)


def _initial_tags(jaxpr, tags: list) -> dict:
    return {var: tag for var, tag in zip(jaxpr.invars, tags) if tag is not None}


def _analyse(jaxpr, tags: list[Tag | None], record: _Trace) -> None:
    """Record the sites of ``jaxpr`` in evaluation order and the leaves used elsewhere.

    ``tags`` gives, per input, the shared leaf it is derived from, or None. Calls (jit)
    that receive a tagged value are entered, as :func:`_evaluate` inlines them.
    """
    tag_of = _initial_tags(jaxpr, tags)
    reads: dict = {}  # how often each value is read
    for var in [v for e in jaxpr.eqns for v in e.invars] + list(jaxpr.outvars):
        if not isinstance(var, jcore.Literal):
            reads[var] = reads.get(var, 0) + 1
    dense_output: dict = {}  # output value of a dense site -> its site_id
    for eqn in jaxpr.eqns:
        in_tags = _tags_in(eqn, tag_of)
        if all(t is None for t in in_tags):
            continue
        if eqn.primitive.name in _CALL_PRIMITIVES:
            inner, _ = _inner_jaxpr(eqn)
            _analyse(inner, in_tags, record)
            for var in inner.outvars:  # a tagged value returned by the call
                if not isinstance(var, jcore.Literal) and var in inner.invars:
                    tag = in_tags[inner.invars.index(var)]
                    if tag is not None:
                        record.untappable.add(tag.leaf)
        elif (passed := _passed_tag(eqn, in_tags)) is not None:
            tag_of[eqn.outvars[0]] = passed
        elif (site := _site_of(eqn, in_tags)) is not None:
            site = site._replace(site_id=len(record.sites))
            if site.kind == DOT:
                dense_output[eqn.outvars[0]] = site.site_id
            elif site.kind == ADD:
                act = eqn.invars[1 - site.param_side]
                if act in dense_output and reads[act] == 1:  # y = X W + b: b's Δ is W's Δ
                    site = site._replace(bias_of=dense_output[act])
            record.sites.append(site)
        else:
            record.untappable.update(t.leaf for t in in_tags if t is not None)
    for var in jaxpr.outvars:
        if not isinstance(var, jcore.Literal) and var in tag_of:
            record.untappable.add(tag_of[var].leaf)  # a parameter (or a view of it) returned


def _bind(eqn, invals) -> list:
    with eqn.ctx.manager:
        outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(outs) if eqn.primitive.multiple_results else [outs]


def _evaluate(jaxpr, consts, args, tags, taps: list, state: dict, tapped: frozenset) -> list:
    """Evaluate ``jaxpr`` like ``jax.core.eval_jaxpr``, with the taps of :func:`_analyse`.

    The k-th site of a ``tapped`` leaf (in the order of :func:`_analyse`) gets ``taps[k]``
    added to its output; its activation and parameter operands are appended to
    ``state["x"]`` and ``state["p"]`` (None for a bias: its block needs neither).
    """
    env: dict = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    tag_of = _initial_tags(jaxpr, tags)
    for eqn in jaxpr.eqns:
        in_tags = _tags_in(eqn, tag_of)
        invals = [_read(env, v) for v in eqn.invars]
        site = None
        if any(t is not None for t in in_tags) and eqn.primitive.name in _CALL_PRIMITIVES:
            inner, inner_consts = _inner_jaxpr(eqn)
            outs = _evaluate(inner, inner_consts, invals, in_tags, taps, state, tapped)
        else:
            outs = _bind(eqn, invals)
            if any(t is not None for t in in_tags):
                passed = _passed_tag(eqn, in_tags)
                if passed is not None:
                    tag_of[eqn.outvars[0]] = passed
                else:
                    site = _site_of(eqn, in_tags)
        if site is not None and site.leaf in tapped:
            outs = [outs[0] + taps[state["tapped"]]]
            state["tapped"] += 1
            bias = site.kind == ADD
            state["x"].append(None if bias else invals[1 - site.param_side])
            state["p"].append(None if bias else invals[site.param_side])
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
    tags = [Tag(i) for i in range(len(shared_leaves))] + [None] * (num_args - len(shared_leaves))
    _analyse(closed.jaxpr, tags, record)
    tapped = frozenset(s.leaf for s in record.sites) - record.untappable
    sites = tuple(s for s in record.sites if s.leaf in tapped)
    return Plan(closed, jax.tree.structure(out_shape), sites, tapped, len(shared_leaves))


def _feature_gradients_inside(losses_of_features: Callable, z: PyTree, num_tasks: int) -> PyTree:
    """∂L_t/∂z for every leaf of z, stacked as (T, ...), one backward per task through
    its own head (unrolled: a vmap over one-hot cotangents would run every head T times)."""
    rows = [jax.grad(lambda f, t=t: losses_of_features(f)[t])(z) for t in range(num_tasks)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *rows)


def _zero_tap(site: Site) -> jax.Array:
    """Zeros shaped like the site's output, varying over the same mesh axes: a replicated
    tap would make its cotangent an all-reduce of every device's (different) rows."""
    zeros = jnp.zeros(site.out_shape, site.out_dtype)
    return jax.lax.pcast(zeros, site.out_varying, to="varying") if site.out_varying else zeros


# ---- rows: every row-based block reads X as (N, K) and Δ task-first, (T, N, M) ---------------
# Task-first is the layout the batched backward produces by itself (vmap moves the task axis
# to the front at every ReLU mask), so Δ is never copied into another layout.


def _rows_and_deltas(site: Site, x: jax.Array, delta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Dense site: X as (N, K), K in W's contracted-dim order, and Δ (T, out…) as (T, N, M)."""
    x_rows = jnp.transpose(x, site.act_free + site.act_contract)
    n = math.prod(x.shape[d] for d in site.act_free)
    x_rows = x_rows.reshape(n, -1)
    t = delta.shape[0]
    if site.param_side == 1:  # out = (act free..., param free...)
        return x_rows, delta.reshape(t, n, -1)
    return x_rows, jnp.swapaxes(delta.reshape(t, -1, n), 1, 2)  # out = (param free..., act free...)


def _features_last(array: jax.Array, axis: int, width: int = 1) -> jax.Array:
    """``array`` with its dims ``axis .. axis+width-1`` moved to the end, in order."""
    moved = tuple(range(axis, axis + width))
    return jnp.transpose(array, tuple(d for d in range(array.ndim) if d not in moved) + moved)


def _conv_is_plain(site: Site) -> bool:
    params = site.eqn.params
    return params["feature_group_count"] == 1 and params["batch_group_count"] == 1


def _conv_patches(site: Site, x: jax.Array) -> jax.Array:
    """The im2col view of a convolution's input: (N·H'·W'…, C_in·k_h·k_w…) rows, one per
    output position, in the order of :func:`_conv_delta_rows` (a convolution with the
    identity kernel, laid out like the site's own kernel)."""
    params = site.eqn.params
    numbers = params["dimension_numbers"]
    kernel_shape = site.eqn.invars[1].aval.shape
    channels = kernel_shape[numbers.rhs_spec[1]]
    window = tuple(kernel_shape[d] for d in numbers.rhs_spec[2:])
    size = channels * math.prod(window)
    canonical = jnp.eye(size, dtype=x.dtype).reshape((size, channels) + window)  # O, I, spatial…
    identity = jnp.transpose(canonical, tuple(np.argsort(numbers.rhs_spec)))
    patches = jax.lax.conv_general_dilated(
        x, identity, params["window_strides"], params["padding"], params["lhs_dilation"],
        params["rhs_dilation"], numbers, precision=_HIGHEST,
    )
    return _features_last(patches, numbers.out_spec[1]).reshape(-1, size)


def _conv_delta_rows(site: Site, delta: jax.Array) -> jax.Array:
    """Δ (T, out…) as (T, N·H'·W'…, C_out), rows in the order of :func:`_conv_patches`."""
    moved = _features_last(delta, 1 + site.eqn.params["dimension_numbers"].out_spec[1])
    return moved.reshape(delta.shape[0], -1, moved.shape[-1])


def _is_row_lookup(site: Site) -> bool:
    """A gather that reads whole rows of a table by id (an embedding lookup)."""
    params, table = site.eqn.params, site.eqn.invars[0].aval
    numbers = params["dimension_numbers"]
    out_ndim = len(site.out_shape)
    return (
        tuple(numbers.collapsed_slice_dims) == (0,)
        and tuple(numbers.start_index_map) == (0,)
        and not numbers.operand_batching_dims
        and tuple(params["slice_sizes"]) == (1,) + tuple(table.shape[1:])
        and tuple(numbers.offset_dims) == tuple(range(out_ndim - table.ndim + 1, out_ndim))
        and site.eqn.invars[1].aval.shape[-1] == 1
    )


def _lookup_ids(site: Site, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(ids, valid) of a row lookup, one per row: out-of-range ids are dropped (mode
    FILL_OR_DROP) or clipped (CLIP) as the gather does."""
    vocab = site.eqn.invars[0].aval.shape[0]
    ids = indices.reshape(-1)
    if "CLIP" in str(site.eqn.params["mode"]):
        return jnp.clip(ids, 0, vocab - 1), jnp.ones(ids.shape, bool)
    return ids, (ids >= 0) & (ids < vocab)


def _gather_delta_rows(site: Site, delta: jax.Array) -> jax.Array:
    """Δ (T, rows…, D…) of a row lookup as (T, N, D)."""
    row_dims = len(site.out_shape) - site.eqn.invars[0].aval.ndim + 1
    return delta.reshape(delta.shape[0], math.prod(site.out_shape[:row_dims]), -1)


# ---- the blocks -------------------------------------------------------------------------------


def gram_trick_is_cheaper(rows: int, k: int, m: int, num_tasks: int) -> bool:
    """(b) N²K + N²TM + T²NM flops against (a) TNKM + T²KM (module docstring)."""
    per_leaf = num_tasks * rows * k * m + num_tasks**2 * k * m
    gram = rows**2 * k + rows**2 * num_tasks * m + num_tasks**2 * rows * m
    return gram < per_leaf


def lookup_gram_is_cheaper(rows: int, vocab: int, m: int, num_tasks: int) -> bool:
    """Embedding: (b) N² + N²TM + T²NM against (a) TNM + TVM + T²VM (module docstring)."""
    scatter = num_tasks * rows * m + num_tasks * vocab * m + num_tasks**2 * vocab * m
    gram = rows**2 + rows**2 * num_tasks * m + num_tasks**2 * rows * m
    return gram < scatter


def _psum(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _f32(x: jax.Array) -> jax.Array:
    """x in float32, or float64 where it already is (the float64 tests)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _block_from_kernel(kernel: jax.Array, delta: jax.Array) -> jax.Array:
    """⟨Δ_s, K Δ_t⟩ for a row kernel K (N, N) and Δ (T, N, M): the Gram trick.

    Written as (K Δ)[n, t, m] then one T×T product per row n: XLA fuses the three products
    (X Xᵀ included) into one kernel that reads Δ once."""
    delta = _f32(delta)
    mixed = jax.lax.dot_general(_f32(kernel), delta, (((1,), (1,)), ((), ())), precision=_HIGHEST)  # (N, T, M)
    per_row = jax.lax.dot_general(delta, mixed, (((2,), (2,)), ((1,), (0,))), precision=_HIGHEST)  # (N, T, T)
    return per_row.sum(0)


def _block_from_rows(x: jax.Array, delta: jax.Array, use_gram: bool, axis_name: str | None) -> jax.Array:
    """The T×T Gramian block of one leaf from its rows X (N, K) and Δ (T, N, M)."""
    x, delta = _f32(x), _f32(delta)
    if use_gram:  # single device only: the local rows are all the rows
        return _psum(_block_from_kernel(jnp.matmul(x, x.T, precision=_HIGHEST), delta), axis_name)
    jac = jax.lax.dot_general(delta, x, (((1,), (0,)), ((), ())), precision=_HIGHEST)  # (T, M, K)
    return _block_from_jacobian(jac, axis_name)


def _block_from_jacobian(jac: jax.Array, axis_name: str | None) -> jax.Array:
    """⟨J_s, J_t⟩ of a leaf's T local gradients (T, *leaf), reduced over devices first."""
    flat = _f32(_psum(jac, axis_name).reshape(jac.shape[0], -1))
    return jnp.matmul(flat, flat.T, precision=_HIGHEST)


# ---- one site's parameter gradient (the transpose of its operation) ---------------------------


def _unbroadcast(ct: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum ``ct`` down to ``shape`` (the transpose of a size-1 / leading broadcast)."""
    ct = ct.sum(tuple(range(ct.ndim - len(shape))))
    ones = tuple(i for i, size in enumerate(shape) if size == 1 and ct.shape[i] != 1)
    return ct.sum(ones, keepdims=True).reshape(shape)


def _transpose_chain(ct: jax.Array, chain: tuple) -> jax.Array:
    """The transpose of the leaf-to-operand equations (casts, reshapes, broadcasts)."""
    for eqn in reversed(chain):
        name, aval = eqn.primitive.name, eqn.invars[0].aval
        if name == "broadcast_in_dim":
            kept = eqn.params["broadcast_dimensions"]
            ct = ct.sum(tuple(d for d in range(ct.ndim) if d not in kept))
            ct = _unbroadcast(ct, tuple(aval.shape))
        elif name == "transpose":
            ct = jnp.transpose(ct, tuple(np.argsort(eqn.params["permutation"])))
        elif name in ("reshape", "squeeze", "expand_dims"):
            ct = ct.reshape(aval.shape)
        elif name == "convert_element_type":
            ct = ct.astype(aval.dtype)
        # pvary, copy: the identity on this device's rows (the psum comes after)
    return ct


def _site_gradient(site: Site, x, p, delta: jax.Array) -> jax.Array:
    """The leaf-shaped gradient, on this device's rows, of ⟨Δ, op(X, W)⟩ for one task's Δ."""
    if site.kind == ADD:
        grad = _unbroadcast(delta, tuple(site.eqn.invars[site.param_side].aval.shape))
    else:
        def op(param):
            operands = [x, param] if site.param_side == 1 else [param, x]
            return _bind(site.eqn, operands)[0]

        _, vjp = jax.vjp(op, p)
        (grad,) = vjp(delta.astype(site.out_dtype))
    return _transpose_chain(grad, site.chain)


def _site_jacobian(site: Site, x, p, delta: jax.Array) -> jax.Array:
    """The T local gradients (T, *leaf) of one site from its Δ (T, out…)."""
    return jax.vmap(lambda d: _site_gradient(site, x, p, d))(delta)


class _Use(NamedTuple):
    site: Site
    x: Any
    p: Any
    delta: jax.Array


def _rides_on(bias: list[_Use], dense: list[_Use]) -> bool:
    """Whether the bias ``bias`` is added to exactly the outputs of the dense sites ``dense``,
    broadcast over their rows only: then its gradient is Σ_rows Δ of the same Δ, and its
    block ⟨1ᵀΔ_s, 1ᵀΔ_t⟩ joins the dense leaf's Gram trick as the kernel X Xᵀ + 1 1ᵀ (d_in = 1),
    so no other reader of Δ is needed."""
    if [u.site.bias_of for u in bias] != [u.site.site_id for u in dense]:
        return False
    for b, d in zip(bias, dense):
        width = len(d.site.param_free)
        operand = tuple(b.site.eqn.invars[b.site.param_side].aval.shape)
        rows, features = operand[: len(operand) - width], operand[len(operand) - width :]
        if d.site.param_side != 1 or features != d.site.out_shape[len(d.site.out_shape) - width :]:
            return False
        if any(size != 1 for size in rows):
            return False
    return True


def _dense_uses_gram(uses: list[_Use], single_device: bool) -> bool:
    """Whether a dense leaf takes the Gram trick (b): one device, and (b) costs less."""
    first = uses[0]
    rows = [math.prod(u.x.shape[d] for d in u.site.act_free) for u in uses]
    k = math.prod(first.x.shape[d] for d in first.site.act_contract)
    m = math.prod(first.site.out_shape) // rows[0]
    return single_device and gram_trick_is_cheaper(sum(rows), k, m, first.delta.shape[0])


def _folds(dense: list[_Use], bias: list[_Use], single_device: bool) -> bool:
    """Whether the bias's block joins the dense leaf's Gram trick (:func:`_rides_on`)."""
    return all(u.site.kind == DOT for u in dense) and _dense_uses_gram(dense, single_device) and _rides_on(bias, dense)


def _leaf_block(
    uses: list[_Use], single_device: bool, axis_name: str | None, bias: list[_Use] | None = None
) -> jax.Array:
    """The T×T block of one tapped leaf: the cheapest form its sites allow (module docstring);
    with ``bias`` (a bias that :func:`_folds` into this dense leaf), both leaves' block."""
    kinds = {u.site.kind for u in uses}
    num_tasks = uses[0].delta.shape[0]
    if kinds == {DOT}:
        x_rows, d_rows = _stacked_rows([_rows_and_deltas(u.site, u.x, u.delta) for u in uses])
        use_gram = _dense_uses_gram(uses, single_device)
        if bias is not None:  # the bias is a d_in = 1 column of ones in X: K = X Xᵀ + 1 1ᵀ
            x = _f32(x_rows)
            x = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], 1)
            return _psum(_block_from_kernel(jnp.matmul(x, x.T, precision=_HIGHEST), d_rows), axis_name)
        return _block_from_rows(x_rows, d_rows, use_gram, axis_name)
    if single_device and kinds == {CONV} and all(_conv_is_plain(u.site) for u in uses):
        rows = [(_conv_patches(u.site, u.x), _conv_delta_rows(u.site, u.delta)) for u in uses]
        n = sum(r[0].shape[0] for r in rows)
        k, m = rows[0][0].shape[1], rows[0][1].shape[2]
        if gram_trick_is_cheaper(n, k, m, num_tasks):
            return _block_from_rows(*_stacked_rows(rows), True, axis_name)
    if single_device and kinds == {GATHER} and all(_is_row_lookup(u.site) for u in uses):
        table = uses[0].site.eqn.invars[0].aval.shape
        n = sum(math.prod(u.site.out_shape) // math.prod(table[1:]) for u in uses)
        if lookup_gram_is_cheaper(n, table[0], math.prod(table[1:]), num_tasks):
            ids, valid = (jnp.concatenate(a) for a in zip(*(_lookup_ids(u.site, u.x) for u in uses)))
            (deltas,) = _stacked_rows([(_gather_delta_rows(u.site, u.delta),) for u in uses], (1,))
            kernel = (ids[:, None] == ids[None, :]) & valid[:, None] & valid[None, :]
            return _psum(_block_from_kernel(kernel.astype(deltas.dtype), deltas), axis_name)
    jac = sum(_site_jacobian(u.site, u.x, u.p, u.delta).astype(_f32(u.delta).dtype) for u in uses)
    return _block_from_jacobian(jac, axis_name)


def _stacked_rows(rows: list[tuple], axes: tuple[int, ...] = (0, 1)) -> tuple:
    """Row blocks (X (N, K), Δ (T, N, M)) of several sites of one leaf, stacked along their
    row axes ``axes`` in a common dtype."""
    if len(rows) == 1:
        return rows[0]
    out = []
    for parts, axis in zip(zip(*rows), axes):
        dtype = jnp.result_type(*parts)
        out.append(jnp.concatenate([p.astype(dtype) for p in parts], axis))
    return tuple(out)


def _leaf_direction(uses: list[_Use], leaf: jax.Array, axis_name: str | None) -> jax.Array:
    """op_uᵀ(X_u, Δ^w_u) summed over the leaf's sites (each ``delta`` here is Δ^w, no T)."""
    if all(u.site.kind == DOT for u in uses):
        pairs = [_rows_and_deltas(u.site, u.x, u.delta[None]) for u in uses]
        x_rows, d_rows = _stacked_rows([(x, d[0]) for x, d in pairs], (0, 0))
        accumulate = jnp.promote_types(x_rows.dtype, jnp.float32)
        grad = jnp.matmul(x_rows.T, d_rows.astype(x_rows.dtype), preferred_element_type=accumulate)
        grad = _to_leaf_layout(uses[0].site, _psum(grad, axis_name), leaf.shape)
    else:
        grad = _psum(sum(_f32(_site_gradient(u.site, u.x, u.p, u.delta)) for u in uses), axis_name)
    return grad.astype(leaf.dtype)


def _to_leaf_layout(site: Site, matrix: jax.Array, leaf_shape: tuple[int, ...]) -> jax.Array:
    """A (..., K, M) gradient back to the leaf's layout."""
    order = site.param_contract + site.param_free
    shape = matrix.shape[:-2] + tuple(leaf_shape[d] for d in order)
    lead = matrix.ndim - 2
    inverse = [order.index(d) + lead for d in range(len(order))]
    return jnp.transpose(matrix.reshape(shape), tuple(range(lead)) + tuple(inverse))


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
    untapped_ids = [i for i in range(plan.num_leaves) if i not in plan.tapped]
    args = jax.tree.leaves((leaves, batch, rng))
    extra = args[plan.num_leaves :]
    tags = [Tag(i) for i in range(plan.num_leaves)] + [None] * len(extra)

    def encode_and_operands(taps, untapped):
        current = list(leaves)
        for i, value in zip(untapped_ids, untapped):
            current[i] = value
        state = {"tapped": 0, "x": [], "p": []}
        outs = _evaluate(plan.closed.jaxpr, plan.closed.consts, current + extra, tags, taps, state, plan.tapped)
        saved = jax.tree.map(jax.lax.stop_gradient, (state["x"], state["p"]))
        return jax.tree.unflatten(plan.out_tree, outs), saved

    taps = [_zero_tap(s) for s in plan.sites]
    untapped = [leaves[i] for i in untapped_ids]
    z, trunk_vjp, (xs, ps) = jax.vjp(encode_and_operands, taps, untapped, has_aux=True)
    losses, heads_vjp = jax.vjp(losses_of, params["tasks"], z)
    num_tasks = losses.shape[0]
    task_grads, _ = heads_vjp(jnp.ones_like(losses))
    z_rows = _feature_gradients_inside(lambda f: losses_of(params["tasks"], f), z, num_tasks)
    deltas, jac_untapped = jax.vmap(trunk_vjp)(z_rows)

    def uses_of(site_deltas) -> dict[int, list[_Use]]:
        grouped: dict[int, list[_Use]] = {}
        for site, x, p, delta in zip(plan.sites, xs, ps, site_deltas):
            grouped.setdefault(site.leaf, []).append(_Use(site, x, p, delta))
        return grouped

    single_device = axis_name is None or jax.lax.axis_size(axis_name) == 1
    gram = jnp.zeros((num_tasks, num_tasks), jnp.promote_types(losses.dtype, jnp.float32))
    for jac in jac_untapped:
        flat = _f32(jac.reshape(num_tasks, -1))
        gram = gram + jnp.matmul(flat, flat.T, precision=_HIGHEST)
    held = uses_of(deltas)
    bias_leaf = {}  # dense leaf -> the bias leaf added to its outputs alone
    site_leaf = {s.site_id: s.leaf for s in plan.sites}
    for leaf, uses in held.items():
        dense = site_leaf.get(uses[0].site.bias_of) if uses[0].site.kind == ADD else None
        if dense is not None:
            bias_leaf.setdefault(dense, leaf)
    bias_leaf = {w: b for w, b in bias_leaf.items() if _folds(held[w], held[b], single_device)}
    # the last layers first: their Δ exist first in the backward pass, and the sum in this order
    # lets each block be formed (and its Δ freed) as soon as its Δ exists
    for leaf, uses in reversed(held.items()):
        if leaf not in bias_leaf.values():
            gram = gram + _leaf_block(uses, single_device, axis_name, held.get(bias_leaf.get(leaf)))

    def tapped_direction(out: list, grouped: dict[int, list[_Use]]) -> None:
        for i, uses in grouped.items():
            out[i] = _leaf_direction(uses, leaves[i], axis_name)

    def direction_from_deltas(weights: jax.Array) -> PyTree:
        weights = jax.lax.stop_gradient(weights)
        out = list(leaves)
        for i, jac in zip(untapped_ids, jac_untapped):
            out[i] = jnp.tensordot(weights.astype(jac.dtype), jac, axes=1, precision=_HIGHEST)
        combined = {
            i: [u._replace(delta=jnp.tensordot(weights.astype(u.delta.dtype), u.delta, 1, precision=_HIGHEST))
                for u in uses]
            for i, uses in held.items()
        }
        tapped_direction(out, combined)
        return jax.tree.unflatten(treedef, out)

    def direction_by_backward(weights: jax.Array) -> PyTree:
        weights = jax.lax.stop_gradient(weights)
        _, cotangent = heads_vjp(weights.astype(losses.dtype))
        deltas_w, untapped_w = trunk_vjp(cotangent)
        out = list(leaves)
        for i, grad in zip(untapped_ids, untapped_w):
            out[i] = grad
        tapped_direction(out, uses_of(deltas_w))
        return jax.tree.unflatten(treedef, out)

    # with no tapped leaf there are no Δ to hold: the weighted sum of the untapped rows is
    # cheaper than one more backward pass (through a scan, say)
    direction = direction_from_deltas if hold_deltas or not plan.sites else direction_by_backward
    return EngineResult(losses, gram, direction, task_grads, len(plan.tapped))


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
    "lookup_gram_is_cheaper",
    "gramian_engine",
    "plan_encode",
]

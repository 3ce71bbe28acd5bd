"""Data augmentation as pure functions of (batch, seed, step): text, images, molecules.

Every random draw comes from a key per example,

    key(e) = fold_in(fold_in(fold_in(key(seed), step), first_index + e), operation),

where ``first_index + e`` is the example's position in the *global* batch. So an augmented
batch depends only on the seed, the step and the batch itself: the same on any number of
devices or hosts (each passes the global index of its first example), and the same after a
resume at that step. All functions are jit-compatible (static shapes; ``step`` and
``first_index`` may be traced) and leave every label, and every key they do not own, as it was.
Nothing is on by default: ``make_augmentation({}, spec)`` is ``None``.

Text (``tokens`` (B, L), ``tokens_mask`` (B, L); tagging labels (B, L) with masks):
- ``token_deletion`` p: each real token is deleted with probability p (never all of a
  sentence: its first token then stays); the rest move left, padding fills the end. A
  deleted token takes its tag (and tag mask) with it.
- ``token_swap`` p: adjacent real tokens swap with probability p per pair, in two passes
  (pairs starting at even, then at odd positions), so a token moves at most two places;
  tags move with their tokens.
- ``span_mask`` p, ``span_length`` k: each real token starts, with probability p, a span of
  k tokens replaced by the unknown id (1) — word dropout by spans. Tags stay.
Images (``image`` (B, H, W) or (B, H, W, C)):
- ``shift`` s: a translation by integers (dy, dx) ∈ [−s, s]², zero fill (= pad by s, crop
  back to H×W).
- ``crop`` m: a random square-scale crop of side fraction a ~ U(m, 1) at a uniform
  position, resized back to H×W with bilinear interpolation.
- ``flip``: left-right mirror; refused where tasks are named "left" and "right" (Multi-MNIST,
  Multi-Fashion), whose labels a mirror would swap.
Molecules (``positions`` (B, N, 3), ``atoms_mask`` (B, N)):
- ``rotation``: a uniformly random rotation (Shoemake 1992, "Uniform random rotations",
  from a uniform unit quaternion) about the molecule's centroid; padded atoms do not move.
  Pairwise distances, hence QM9's targets, are unchanged.

Order when several are on: deletion, swap, span mask; crop, shift, flip.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from mtl_jax.data.spec import DatasetSpec
from mtl_jax.data.text import PAD_ID, UNK_ID
from mtl_jax.errors import ConfigError
from mtl_jax.parallel import DATA_AXIS
from mtl_jax.types import Batch, mask_key

Augmentation = Callable[..., Batch]

# option -> the input kind it needs
OPTIONS: Mapping[str, str] = {
    "token_deletion": "text",
    "token_swap": "text",
    "span_mask": "text",
    "span_length": "text",
    "shift": "image",
    "crop": "image",
    "flip": "image",
    "rotation": "graph",
}
DEFAULT_SPAN_LENGTH = 3
_SALT = {"token_deletion": 1, "token_swap": 2, "span_mask": 3, "crop": 4, "shift": 5, "rotation": 6}


# --------------------------------------------------------------------------- keys


def example_keys(seed: int, step, first_index, batch_size: int, operation: str) -> jax.Array:
    """(B,) keys: fold_in(fold_in(fold_in(key(seed), step), first_index + e), operation)."""
    base = jax.random.fold_in(jax.random.key(seed), jnp.asarray(step, jnp.uint32))
    indices = jnp.asarray(first_index, jnp.uint32) + jnp.arange(batch_size, dtype=jnp.uint32)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)
    return jax.vmap(lambda k: jax.random.fold_in(k, _SALT[operation]))(keys)


# --------------------------------------------------------------------------- text (one example)


def _gather(order: jax.Array, keep: jax.Array, values: jax.Array, fill) -> jax.Array:
    return jnp.where(keep, values[order], jnp.asarray(fill, values.dtype))


def delete_tokens(key: jax.Array, tokens: jax.Array, mask: jax.Array, tags: dict, rate: float):
    """One sentence (L,): delete real tokens with probability ``rate``; tags go with them.

    ``tags`` maps a label key to (labels (L,), label mask (L,)). Returns (tokens, mask, tags).
    """
    length = tokens.shape[0]
    drop = (jax.random.uniform(key, (length,)) < rate) & mask
    first_real = jnp.argmax(mask)
    everything = jnp.all(drop | ~mask)
    drop = drop & ~(everything & (jnp.arange(length) == first_real))
    keep = mask & ~drop
    order = jnp.argsort(~keep, stable=True)  # kept tokens first, in their order
    kept = keep[order]
    new_tags = {
        name: (_gather(order, kept, labels, 0), label_mask[order] & kept)
        for name, (labels, label_mask) in tags.items()
    }
    return _gather(order, kept, tokens, PAD_ID), kept, new_tags


def _swap_pass(key: jax.Array, mask: jax.Array, rate: float, parity: int) -> jax.Array:
    """A permutation of 0..L−1 swapping some adjacent real pairs (i, i+1), i ≡ parity mod 2."""
    length = mask.shape[0]
    index = jnp.arange(length)
    partner_real = jnp.concatenate([mask[1:], jnp.zeros((1,), bool)])
    swap = (index % 2 == parity) & mask & partner_real & (jax.random.uniform(key, (length,)) < rate)
    from_left = jnp.concatenate([jnp.zeros((1,), bool), swap[:-1]])
    return index + swap.astype(index.dtype) - from_left.astype(index.dtype)


def swap_tokens(key: jax.Array, tokens: jax.Array, mask: jax.Array, tags: dict, rate: float):
    """One sentence (L,): swap adjacent real tokens (two passes); tags move with tokens."""
    first, second = jax.random.split(key)
    order = _swap_pass(first, mask, rate, 0)
    order = order[_swap_pass(second, mask, rate, 1)]
    new_tags = {name: (labels[order], label_mask[order]) for name, (labels, label_mask) in tags.items()}
    return tokens[order], mask, new_tags  # swaps stay among real tokens: the mask is unchanged


def mask_spans(key: jax.Array, tokens: jax.Array, mask: jax.Array, tags: dict, rate: float, span: int):
    """One sentence (L,): spans of ``span`` tokens replaced by the unknown id; tags stay."""
    length = tokens.shape[0]
    starts = (jax.random.uniform(key, (length,)) < rate) & mask
    covered = starts
    for offset in range(1, span):
        covered = covered | jnp.concatenate([jnp.zeros((offset,), bool), starts[:-offset]])
    return jnp.where(covered & mask, jnp.asarray(UNK_ID, tokens.dtype), tokens), mask, tags


# --------------------------------------------------------------------------- images (one example)


def shift_image(key: jax.Array, image: jax.Array, max_shift: int) -> jax.Array:
    """(H, W[, C]) translated by integers (dy, dx) ∈ [−s, s]², zero fill."""
    dy, dx = jax.random.randint(key, (2,), -max_shift, max_shift + 1)
    height, width = image.shape[:2]
    rows, cols = jnp.arange(height) - dy, jnp.arange(width) - dx
    valid = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    moved = image[jnp.clip(rows, 0, height - 1)][:, jnp.clip(cols, 0, width - 1)]
    valid = valid.reshape(valid.shape + (1,) * (image.ndim - 2))
    return jnp.where(valid, moved, jnp.zeros((), image.dtype))


def bilinear_resample(image: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """image sampled at the grid rows × cols (pixel-centre coordinates), edges clamped."""
    height, width = image.shape[:2]

    def axis(coords, size):
        coords = jnp.clip(coords, 0.0, size - 1.0)
        low = jnp.floor(coords).astype(jnp.int32)
        high = jnp.minimum(low + 1, size - 1)
        return low, high, coords - low

    r0, r1, fr = axis(rows, height)
    c0, c1, fc = axis(cols, width)
    expand = (1,) * (image.ndim - 2)
    fr = fr.reshape((-1, 1) + expand).astype(image.dtype)
    fc = fc.reshape((1, -1) + expand).astype(image.dtype)
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def crop_image(key: jax.Array, image: jax.Array, min_scale: float) -> jax.Array:
    """(H, W[, C]): a crop of side fraction a ~ U(min_scale, 1) resized back to H×W."""
    scale_key, row_key, col_key = jax.random.split(key, 3)
    height, width = image.shape[:2]
    scale = jax.random.uniform(scale_key, (), minval=min_scale, maxval=1.0)
    top = jax.random.uniform(row_key, ()) * height * (1 - scale)
    left = jax.random.uniform(col_key, ()) * width * (1 - scale)
    rows = top + (jnp.arange(height) + 0.5) * scale - 0.5
    cols = left + (jnp.arange(width) + 0.5) * scale - 0.5
    return bilinear_resample(image, rows, cols)


def flip_image(image: jax.Array) -> jax.Array:
    """(H, W[, C]) mirrored left-right."""
    return image[:, ::-1]


# --------------------------------------------------------------------------- molecules (one example)


def random_rotation(key: jax.Array, dtype=jnp.float32) -> jax.Array:
    """A uniformly random 3×3 rotation from a uniform unit quaternion (Shoemake 1992)."""
    u1, u2, u3 = jax.random.uniform(key, (3,), dtype)
    a, b = jnp.sqrt(1 - u1), jnp.sqrt(u1)
    w, x = a * jnp.sin(2 * jnp.pi * u2), a * jnp.cos(2 * jnp.pi * u2)
    y, z = b * jnp.sin(2 * jnp.pi * u3), b * jnp.cos(2 * jnp.pi * u3)
    return jnp.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotate_molecule(key: jax.Array, positions: jax.Array, mask: jax.Array) -> jax.Array:
    """(N, 3) rotated about the centroid of the real atoms; padded atoms stay put."""
    weights = mask.astype(positions.dtype)[:, None]
    centroid = jnp.sum(positions * weights, axis=0) / jnp.maximum(jnp.sum(weights), 1.0)
    rotated = (positions - centroid) @ random_rotation(key, positions.dtype).T + centroid
    return jnp.where(mask[:, None], rotated, positions)


# --------------------------------------------------------------------------- batches


def _number(name: str, value: Any, low: float, high: float, *, closed_high: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low <= value and (value <= high if closed_high else value < high)):
        bound = "]" if closed_high else ")"
        raise ConfigError(f"augment.{name}: expected a number in [{low}, {high}{bound}, got {value!r}")
    return float(value)


def _check(config: Mapping[str, Any], spec: DatasetSpec) -> dict:
    """Validated options: unknown names, wrong modality and bad values are ConfigErrors."""
    unknown = sorted(set(config) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"augment.{unknown[0]}: unknown augmentation; accepted: {', '.join(OPTIONS)}")
    kind = spec.input.kind
    for name in config:
        if OPTIONS[name] != kind:
            fitting = [n for n, k in OPTIONS.items() if k == kind] or ["none"]
            raise ConfigError(
                f"augment.{name} needs {OPTIONS[name]} input, but dataset {spec.name!r} has {kind} input;"
                f" augmentations for {kind}: {', '.join(fitting)}"
            )
    options = {}
    for name in ("token_deletion", "token_swap", "span_mask"):
        if name in config:
            options[name] = _number(name, config[name], 0.0, 1.0)
    if "span_length" in config:
        value = config["span_length"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"augment.span_length: expected a positive int, got {value!r}")
        if "span_mask" not in config:
            raise ConfigError("augment.span_length needs augment.span_mask (the rate spans start at)")
    options["span_length"] = config.get("span_length", DEFAULT_SPAN_LENGTH)
    if "shift" in config:
        value = config["shift"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"augment.shift: expected a non-negative int (pixels), got {value!r}")
        options["shift"] = value
    if "crop" in config:
        options["crop"] = _number("crop", config["crop"], 0.0, 1.0, closed_high=True)
        if options["crop"] == 0.0:
            raise ConfigError("augment.crop: the smallest side fraction must be > 0, e.g. 0.8")
    if "flip" in config:
        if not isinstance(config["flip"], bool):
            raise ConfigError(f"augment.flip: expected true or false, got {config['flip']!r}")
        names = {task.name for task in spec.tasks}
        if config["flip"] and {"left", "right"} <= names:
            raise ConfigError(
                f"augment.flip: dataset {spec.name!r} has tasks 'left' and 'right', which a mirror"
                " would swap; use shift or crop instead"
            )
        options["flip"] = config["flip"]
    if "rotation" in config:
        if not isinstance(config["rotation"], bool):
            raise ConfigError(f"augment.rotation: expected true or false, got {config['rotation']!r}")
        options["rotation"] = config["rotation"]
    return options


def _text(batch: Batch, keys: dict, options: dict, spec: DatasetSpec) -> Batch:
    key_name = spec.input.key
    tagging = [t for t in spec.tasks if t.kind == "tagging" and t.label_key in batch]

    def one(tokens, mask, tags, deletion_key, swap_key, span_key):
        if options.get("token_deletion"):
            tokens, mask, tags = delete_tokens(deletion_key, tokens, mask, tags, options["token_deletion"])
        if options.get("token_swap"):
            tokens, mask, tags = swap_tokens(swap_key, tokens, mask, tags, options["token_swap"])
        if options.get("span_mask"):
            tokens, mask, tags = mask_spans(span_key, tokens, mask, tags, options["span_mask"], options["span_length"])
        return tokens, mask, tags

    tags = {t.label_key: (batch[t.label_key], batch[t.mask_key] if t.mask_key in batch else batch[mask_key(key_name)])
            for t in tagging}
    tokens, mask, tags = jax.vmap(one)(
        batch[key_name], batch[mask_key(key_name)], tags,
        keys["token_deletion"], keys["token_swap"], keys["span_mask"],
    )
    out = dict(batch)
    out[key_name], out[mask_key(key_name)] = tokens, mask
    for task in tagging:
        out[task.label_key] = tags[task.label_key][0]
        if task.mask_key in batch:
            out[task.mask_key] = tags[task.label_key][1]
    return out


def _image(batch: Batch, keys: dict, options: dict, spec: DatasetSpec) -> Batch:
    images = batch[spec.input.key]
    if options.get("crop", 1.0) < 1.0:
        images = jax.vmap(lambda k, x: crop_image(k, x, options["crop"]))(keys["crop"], images)
    if options.get("shift"):
        images = jax.vmap(lambda k, x: shift_image(k, x, options["shift"]))(keys["shift"], images)
    if options.get("flip"):
        images = images[:, :, ::-1]
    return {**batch, spec.input.key: images}


def _graph(batch: Batch, keys: dict, options: dict, spec: DatasetSpec) -> Batch:
    if not options.get("rotation"):
        return batch
    positions = jax.vmap(rotate_molecule)(keys["rotation"], batch["positions"], batch["atoms_mask"])
    return {**batch, "positions": positions}


def make_augmentation(config: Mapping[str, Any], spec: DatasetSpec) -> Augmentation | None:
    """``augment(batch, seed, step, first_index=0) -> batch`` for ``config``, or None if empty.

    Raises ConfigError (one line) for an unknown augmentation, one that does not fit the
    dataset's input kind, a bad value, or flips on a left/right dataset.
    """
    options = _check(config, spec)
    active = [name for name in _SALT if options.get(name)]
    if "flip" in options and options["flip"]:
        active.append("flip")
    if not active:
        return None
    apply = {"text": _text, "image": _image, "graph": _graph}[spec.input.kind]

    def augment(batch: Batch, seed: int, step, first_index=0) -> Batch:
        size = batch[spec.input.key].shape[0]
        keys = {name: example_keys(seed, step, first_index, size, name) for name in _SALT}
        return apply(batch, keys, options, spec)

    return augment


def on_device_slice(augment: Augmentation, seed: int) -> Callable[[Batch, Any], Batch]:
    """``augment`` for the train step's per-device body (inside ``jax.shard_map`` over the
    ``data`` axis): each device augments its contiguous slice of the global batch, told the
    global index of its first example, so N devices give the 1-device result.

    Returns ``apply(local_batch, step) -> local_batch``.
    """

    def apply(batch: Batch, step) -> Batch:
        local = jax.tree.leaves(batch)[0].shape[0]
        return augment(batch, seed, step, jax.lax.axis_index(DATA_AXIS) * local)

    return apply

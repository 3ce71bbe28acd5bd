"""Data augmentation (mtl_jax.data.augment): deterministic from (seed, step, global example
index), padding and masks consistent, tags follow their tokens, labels unchanged, rotations
keep pairwise distances (float64), and bad configs are one ConfigError."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.data.augment import make_augmentation, random_rotation
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec
from mtl_jax.errors import ConfigError

LENGTH, VOCAB = 12, 50
TEXT = DatasetSpec(
    "text", InputSpec("text", "tokens", (), VOCAB),
    (TaskSpec("pos", "tagging", 6), TaskSpec("topic", "classification", 3)),
)
IMAGES = DatasetSpec("images", InputSpec("image", "image", (10, 12)), (TaskSpec("digit", "classification", 10),))
LEFT_RIGHT = DatasetSpec(
    "multi_mnist", InputSpec("image", "image", (10, 12)),
    (TaskSpec("left", "classification", 10), TaskSpec("right", "classification", 10)),
)
GRAPHS = DatasetSpec("qm9", InputSpec("graph", "atomic_numbers", (), 10), (TaskSpec("mu", "regression", 1),))


def text_batch(rng: np.random.Generator, size: int = 16) -> dict:
    lengths = rng.integers(1, LENGTH + 1, size)
    mask = np.arange(LENGTH)[None] < lengths[:, None]
    # distinct token ids per sentence, so every token can be followed; tag = token mod 6
    tokens = np.stack([rng.permutation(np.arange(2, VOCAB))[:LENGTH] for _ in range(size)])
    tokens = np.where(mask, tokens, 0).astype(np.int32)
    tag_mask = mask & (rng.random((size, LENGTH)) < 0.8)
    return {
        "tokens": tokens, "tokens_mask": mask,
        "pos": np.where(mask, tokens % 6, 0).astype(np.int32), "pos_mask": tag_mask,
        "topic": rng.integers(0, 3, size).astype(np.int32), "topic_mask": rng.random(size) < 0.9,
    }


def run(augment, batch, seed=0, step=0, first_index=0) -> dict:
    return jax.device_get(jax.jit(augment, static_argnums=1)(batch, seed, step, first_index))


def check_text_invariants(before: dict, after: dict, *, kept_length: bool) -> None:
    mask = after["tokens_mask"]
    assert after["tokens"].dtype == np.int32 and mask.dtype == bool
    assert np.all(after["tokens"][~mask] == 0) and np.all(after["pos"][~mask] == 0)
    assert np.all(~after["pos_mask"][~mask])
    # masks stay a prefix (padding at the end), at least one token per sentence
    assert np.all(mask == (np.arange(LENGTH)[None] < mask.sum(1, keepdims=True)))
    assert np.all(mask.sum(1) >= 1)
    if kept_length:
        np.testing.assert_array_equal(mask, before["tokens_mask"])
    for key in ("topic", "topic_mask"):
        np.testing.assert_array_equal(after[key], before[key])


def tag_of_token(batch: dict) -> list[dict]:
    """Per sentence, token id -> (tag, tag mask)."""
    return [
        {int(t): (int(p), bool(m)) for t, p, m, real in zip(*row) if real}
        for row in zip(batch["tokens"], batch["pos"], batch["pos_mask"], batch["tokens_mask"])
    ]


def test_token_deletion_takes_the_tag_with_the_token(rng):
    batch = text_batch(rng)
    after = run(make_augmentation({"token_deletion": 0.3}, TEXT), batch)
    check_text_invariants(batch, after, kept_length=False)
    assert after["tokens_mask"].sum() < batch["tokens_mask"].sum()  # something was deleted
    for old, new, old_row, new_row in zip(tag_of_token(batch), tag_of_token(after), batch["tokens"], after["tokens"]):
        assert all(old[t] == new[t] for t in new)  # surviving tokens keep their tags
        survivors = [int(t) for t in new_row if t]
        assert survivors == [int(t) for t in old_row if int(t) in new]  # in their order


def test_token_swap_moves_tags_with_tokens_locally(rng):
    batch = text_batch(rng)
    after = run(make_augmentation({"token_swap": 0.5}, TEXT), batch)
    check_text_invariants(batch, after, kept_length=True)
    assert not np.array_equal(after["tokens"], batch["tokens"])
    for old, new, old_row, new_row in zip(tag_of_token(batch), tag_of_token(after), batch["tokens"], after["tokens"]):
        assert old == new  # same tokens, same tags
        where = {int(t): i for i, t in enumerate(old_row) if t}
        assert all(abs(where[int(t)] - i) <= 2 for i, t in enumerate(new_row) if t)


def test_span_mask_uses_the_unknown_id_and_keeps_tags(rng):
    batch = text_batch(rng)
    after = run(make_augmentation({"span_mask": 0.2, "span_length": 2}, TEXT), batch)
    check_text_invariants(batch, after, kept_length=True)
    changed = after["tokens"] != batch["tokens"]
    assert changed.any() and np.all(after["tokens"][changed] == 1)
    for key in ("pos", "pos_mask"):
        np.testing.assert_array_equal(after[key], batch[key])


def test_text_is_deterministic_from_seed_step_and_global_index(rng):
    batch = text_batch(rng)
    augment = make_augmentation({"token_deletion": 0.2, "token_swap": 0.3, "span_mask": 0.1}, TEXT)
    first = run(augment, batch, seed=3, step=7)
    check_text_invariants(batch, first, kept_length=False)
    np.testing.assert_array_equal(first["tokens"], run(augment, batch, seed=3, step=7)["tokens"])
    assert not np.array_equal(first["tokens"], run(augment, batch, seed=3, step=8)["tokens"])
    assert not np.array_equal(first["tokens"], run(augment, batch, seed=4, step=7)["tokens"])
    # two hosts with half the batch each, told their first global index, give the same result
    halves = [{k: v[s] for k, v in batch.items()} for s in (slice(0, 8), slice(8, 16))]
    parts = [run(augment, halves[0], 3, 7, 0), run(augment, halves[1], 3, 7, 8)]
    for key in first:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), first[key])


def test_image_shift_and_crop_keep_labels_and_are_deterministic(rng):
    batch = {"image": rng.random((6, 10, 12, 2)).astype(np.float32), "digit": rng.integers(0, 10, 6).astype(np.int32)}
    shift = run(make_augmentation({"shift": 2}, IMAGES), batch, seed=1, step=5)
    np.testing.assert_array_equal(shift["digit"], batch["digit"])
    for before, after in zip(batch["image"], shift["image"]):
        # some integer translation in [-2, 2]² with zero fill reproduces the output
        candidates = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                      if np.array_equal(after, translate(before, dy, dx))]
        assert candidates
    np.testing.assert_array_equal(shift["image"], run(make_augmentation({"shift": 2}, IMAGES), batch, 1, 5)["image"])
    crop = run(make_augmentation({"crop": 0.7}, IMAGES), batch, seed=1, step=5)
    np.testing.assert_array_equal(crop["digit"], batch["digit"])
    assert crop["image"].shape == batch["image"].shape
    # bilinear interpolation stays within the input's range, and changes the image
    assert crop["image"].min() >= batch["image"].min() - 1e-6 and crop["image"].max() <= batch["image"].max() + 1e-6
    assert not np.allclose(crop["image"], batch["image"])
    identity = run(make_augmentation({"crop": 1.0, "shift": 0}, IMAGES) or (lambda b, *a: b), batch)
    np.testing.assert_array_equal(identity["image"], batch["image"])


def translate(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_crop_matches_a_numpy_bilinear_reference(rng):
    from mtl_jax.data.augment import bilinear_resample

    image = rng.random((7, 9))
    rows, cols = rng.uniform(0, 6, 7), rng.uniform(0, 8, 9)
    with jax.enable_x64():
        got = np.asarray(bilinear_resample(jnp.asarray(image), jnp.asarray(rows), jnp.asarray(cols)))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, 6), np.minimum(c0 + 1, 8)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    expected = (image[np.ix_(r0, c0)] * (1 - fr) * (1 - fc) + image[np.ix_(r0, c1)] * (1 - fr) * fc
                + image[np.ix_(r1, c0)] * fr * (1 - fc) + image[np.ix_(r1, c1)] * fr * fc)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_flip_is_refused_for_left_right_tasks_and_mirrors_otherwise(rng):
    with pytest.raises(ConfigError, match=r"augment.flip: dataset 'multi_mnist' has tasks 'left' and 'right'"):
        make_augmentation({"flip": True}, LEFT_RIGHT)
    batch = {"image": rng.random((2, 10, 12)).astype(np.float32), "digit": np.array([1, 2], np.int32)}
    np.testing.assert_array_equal(run(make_augmentation({"flip": True}, IMAGES), batch)["image"], batch["image"][:, :, ::-1])


def test_rotation_preserves_pairwise_distances_and_padding(rng):
    atoms = 7
    mask = np.arange(atoms)[None] < rng.integers(2, atoms + 1, 5)[:, None]
    positions = rng.standard_normal((5, atoms, 3)) * 2.0 * mask[..., None]
    batch = {"atomic_numbers": np.where(mask, 6, 0).astype(np.int32), "positions": positions, "atoms_mask": mask,
             "mu": rng.standard_normal(5)}
    augment = make_augmentation({"rotation": True}, GRAPHS)
    with jax.enable_x64():
        after = jax.device_get(jax.jit(augment, static_argnums=1)(batch, 2, 9, 0))
    assert after["positions"].dtype == np.float64
    for before, rotated, m in zip(positions, after["positions"], mask):
        d_before = np.linalg.norm(before[m][:, None] - before[m][None], axis=-1)
        d_after = np.linalg.norm(rotated[m][:, None] - rotated[m][None], axis=-1)
        np.testing.assert_allclose(d_after, d_before, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rotated[m].mean(0), before[m].mean(0), atol=1e-12)  # about the centroid
        np.testing.assert_array_equal(rotated[~m], before[~m])
        assert not np.allclose(rotated[m], before[m])
    np.testing.assert_array_equal(after["mu"], batch["mu"])
    with jax.enable_x64():
        r = np.asarray(random_rotation(jax.random.key(0), jnp.float64))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_off_by_default():
    assert make_augmentation({}, TEXT) is None
    assert make_augmentation({"token_deletion": 0.0}, TEXT) is None


@pytest.mark.parametrize(
    "config,spec,message",
    [
        ({"mixup": 0.2}, TEXT, "augment.mixup: unknown augmentation; accepted: token_deletion"),
        ({"shift": 2}, TEXT, "augment.shift needs image input, but dataset 'text' has text input"),
        ({"rotation": True}, IMAGES, "augment.rotation needs graph input"),
        ({"token_deletion": 1.0}, TEXT, r"augment.token_deletion: expected a number in \[0.0, 1.0\)"),
        ({"token_swap": "often"}, TEXT, "augment.token_swap: expected a number"),
        ({"span_length": 2}, TEXT, "augment.span_length needs augment.span_mask"),
        ({"span_mask": 0.1, "span_length": 0}, TEXT, "augment.span_length: expected a positive int"),
        ({"shift": -1}, IMAGES, "augment.shift: expected a non-negative int"),
        ({"crop": 0.0}, IMAGES, "augment.crop: the smallest side fraction must be > 0"),
        ({"flip": 1}, IMAGES, "augment.flip: expected true or false"),
    ],
)
def test_bad_config_is_one_config_error(config, spec, message):
    with pytest.raises(ConfigError, match=message):
        make_augmentation(config, spec)

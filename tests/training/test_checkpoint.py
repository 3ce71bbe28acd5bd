"""Orbax checkpoints: exact round trip (integer dict keys, PRNG keys, optax state), the keep
policy, and falling back to the previous checkpoint when the latest is corrupt."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from mtl_jax.aggregators import get_aggregator
from mtl_jax.training.checkpoint import Checkpointer, ChecksumError, CorruptCheckpointWarning, flatten_state
from mtl_jax.surgery.nonfinite import skip_nonfinite_updates
from mtl_jax.surgery.state import create_train_state
from tests.helpers import small_model


def random_state(rng, aggregator="gradvac"):
    """A train state whose every leaf is random (never zeros), with nnx.List params."""
    model, params = small_model(2, seed=int(rng.integers(1 << 30)))
    state = create_train_state(params, skip_nonfinite_updates(optax.adam(1e-3)), get_aggregator(aggregator), 2, int(rng.integers(1 << 30)))
    leaves, treedef = jax.tree.flatten(state)
    randomised = [
        leaf if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        else np.asarray(rng.integers(1, 100, np.shape(leaf)) if np.issubdtype(leaf.dtype, np.integer) or leaf.dtype == bool
                        else rng.standard_normal(np.shape(leaf))).astype(leaf.dtype)
        for leaf in leaves
    ]
    return jax.tree.unflatten(treedef, randomised)


def assert_identical(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    flat_a, flat_b = flatten_state(a), flatten_state(b)
    assert flat_a.keys() == flat_b.keys()
    for name in flat_a:
        assert flat_a[name].dtype == flat_b[name].dtype, name
        np.testing.assert_array_equal(flat_a[name], flat_b[name], err_msg=name)


def test_params_have_integer_keys_and_survive_the_round_trip(rng, tmp_path):
    state = random_state(rng)
    assert 0 in state.params["shared"]["layers"]  # nnx.List gives integer dict keys
    checkpointer = Checkpointer(tmp_path, keep=2)
    checkpointer.save(7, state, {"data": {"step": 7}, "best": {"metric": "mean/loss"}})
    checkpointer.wait()
    fresh = random_state(np.random.default_rng(rng.integers(1 << 30)))
    step, restored, extra = checkpointer.restore_latest(fresh)
    checkpointer.close()
    assert step == 7 and extra["data"] == {"step": 7}
    assert_identical(restored, state)
    assert jax.random.key_impl(restored.key) == jax.random.key_impl(state.key)
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))


def test_keeps_the_last_k_plus_the_best(rng, tmp_path):
    state = random_state(rng)
    checkpointer = Checkpointer(tmp_path, keep=2)
    scores = {2: 0.3, 4: None, 6: 0.9, 8: 0.5, 10: None, 12: None}
    for step, score in scores.items():
        checkpointer.save(step, state, {"n": step}, score=score)
    checkpointer.wait()
    assert checkpointer.steps() == [6, 10, 12]
    checkpointer.close()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_corrupt_latest_falls_back_to_previous_with_a_warning(rng, tmp_path, damage):
    older, newer = random_state(rng), random_state(rng)
    checkpointer = Checkpointer(tmp_path, keep=3)
    checkpointer.save(1, older, {"n": 1})
    checkpointer.save(2, newer, {"n": 2})
    checkpointer.close()
    files = [p for p in (tmp_path / "2" / "state").rglob("*") if p.is_file() and "commit" not in p.name]
    assert files
    for path in files:
        if damage == "truncate":
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
        else:
            path.unlink()
    checkpointer = Checkpointer(tmp_path, keep=3)
    with pytest.warns(CorruptCheckpointWarning, match="step 2 .* unreadable"):
        step, restored, extra = checkpointer.restore_latest(random_state(rng))
    checkpointer.close()
    assert step == 1 and extra == {"n": 1}
    assert_identical(restored, older)


def test_random_bytes_in_a_data_file_are_caught_by_the_checksums(rng, tmp_path):
    """Orbax reads a damaged array chunk without complaint; the saved checksums catch it."""
    def state():
        return {"w": rng.standard_normal((256, 256)).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32)}

    older, newer = state(), state()
    checkpointer = Checkpointer(tmp_path, keep=3)
    checkpointer.save(1, older, {"n": 1})
    checkpointer.save(2, newer, {"n": 2})
    checkpointer.close()
    data = [p for p in (tmp_path / "2").rglob("*") if p.is_file() and p.parent.name == "d" and p.stat().st_size > 100_000]
    assert len(data) == 1  # the chunk of "w"
    raw = bytearray(data[0].read_bytes())
    offset = int(rng.integers(1024, len(raw) - 1024))
    raw[offset : offset + 8] = bytes(255 - b for b in raw[offset : offset + 8])  # same size, other bytes
    data[0].write_bytes(bytes(raw))
    checkpointer = Checkpointer(tmp_path, keep=3, read_only=True)
    with pytest.raises(ChecksumError, match="step 2: 1 arrays fail their checksum, e.g. 'w'"):
        checkpointer.restore_arrays(2)
    with pytest.warns(CorruptCheckpointWarning, match="step 2 .* unreadable .ChecksumError.*restored step 1 instead"):
        step, restored, extra = checkpointer.restore_latest(state())
    checkpointer.close()
    assert step == 1 and extra == {"n": 1}
    for name in older:
        np.testing.assert_array_equal(restored[name], older[name])


def test_a_one_array_aggregator_state_of_the_old_layout_restores_into_its_named_field(rng):
    from mtl_jax.training.checkpoint import unflatten_state  # noqa: PLC0415

    model, params = small_model(3)
    state = create_train_state(params, optax.sgd(0.1), get_aggregator("gradvac"), 3, 0)
    flat = flatten_state(state)
    (field,) = [name for name in flat if name.startswith("aggregator_state.")]
    flat[field] = rng.standard_normal(flat[field].shape).astype(flat[field].dtype)
    old_layout = {("aggregator_state" if name == field else name): value for name, value in flat.items()}
    restored = flatten_state(unflatten_state(old_layout, state))
    np.testing.assert_array_equal(restored[field], flat[field])

"""``augment`` wired into a run: the train batches change (labels kept), batch n is the
augmentation of the plain batch n at (seed, step=n) (here: an exact translation, checked
against NumPy), the stream is deterministic and resumes exactly, evaluation never sees
augmented batches, and a run stopped and resumed in-process ends bit-identical to an
uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtl_jax.parallel import replicate
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.experiment import Experiment
from mtl_jax.training.loop import train
from tests.helpers import StopAfter, assert_same_batches, take
from tests.training.small_run import tiny_config

AUGMENT = {"shift": 2}
LABELS = ("left", "right")


@pytest.fixture(scope="module")
def plain() -> Experiment:
    return Experiment.from_config(tiny_config())


@pytest.fixture(scope="module")
def augmented(plain) -> Experiment:
    return Experiment.from_config(tiny_config(augment=AUGMENT, steps=6, checkpoint__every=3), data=plain.data)


def translations(image: np.ndarray, reach: int) -> dict[tuple[int, int], np.ndarray]:
    """Every translation of ``image`` by (dy, dx) in [-reach, reach]², zero fill (float64)."""
    height, width = image.shape
    padded = np.pad(image.astype(np.float64), reach)
    return {(dy, dx): padded[reach - dy : reach - dy + height, reach - dx : reach - dx + width]
            for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)}  # fmt: skip


def test_augmented_batches_are_translations_with_the_labels_kept_and_follow_the_step(plain, augmented):
    config = augmented.config
    assert config.augment == AUGMENT and plain.augmentation is None
    original, changed = take(plain.train_batches(), 4), take(augmented.train_batches(), 4)
    moves = []
    for step, (x, y) in enumerate(zip(original, changed)):
        assert x.keys() == y.keys()
        assert y["image"].dtype == x["image"].dtype and y["image"].shape == x["image"].shape
        assert np.abs(y["image"] - x["image"]).max() > 0.1  # the images moved
        for key in set(x) - {"image"}:
            np.testing.assert_array_equal(y[key], x[key], err_msg=key, strict=True)  # labels and masks kept
        expected = np.asarray(augmented.augmentation(x, step, 0)["image"])  # batch n at (seed, step n)
        np.testing.assert_array_equal(y["image"], expected)
        for before, after in zip(x["image"], y["image"]):  # each image: one translation by <= 2 pixels
            found = [move for move, ref in translations(before, 2).items() if np.array_equal(after, ref)]
            assert found, "an augmented image is not a translation by at most 2 pixels"
            moves.append(found[0])
    assert len(set(moves)) > 5  # the moves vary over examples and steps
    assert_same_batches(changed, take(augmented.train_batches(), 4))  # deterministic


def test_a_restored_stream_continues_with_the_same_augmented_batches(augmented):
    batches = augmented.train_batches()
    take(batches, 5)
    state = json.loads(json.dumps(batches.get_state()))
    assert state["step"] == 5
    continued = take(batches, 3)
    restored = augmented.train_batches()
    restored.set_state(state)
    assert_same_batches(take(restored, 3), continued)


def test_evaluation_batches_are_not_augmented(plain, augmented):
    params = replicate(plain.params, plain.mesh)
    assert augmented.evaluate(params, "validation") == plain.evaluate(params, "validation")
    first = next(iter(augmented.data.eval_batches("validation", batch_size=augmented.config.eval_batch_size)))
    again = next(iter(plain.data.eval_batches("validation", batch_size=plain.config.eval_batch_size)))
    assert_same_batches([first], [again])


def final_arrays(run_dir) -> dict[str, np.ndarray]:
    checkpointer = Checkpointer(run_dir / "checkpoints", read_only=True)
    arrays, _ = checkpointer.restore_arrays(max(checkpointer.steps()))
    checkpointer.close()
    return arrays


def test_an_augmented_run_stopped_and_resumed_ends_bit_identical(augmented, tmp_path):
    whole = train(augmented, workdir=tmp_path / "whole", progress=False)
    stopped = train(augmented, workdir=tmp_path / "resumed", progress=False, hooks=(StopAfter(4),))
    assert stopped["stopped"] == "stopped" and stopped["step"] == 4
    resumed = train(augmented, workdir=tmp_path / "resumed", progress=False)
    assert whole["step"] == resumed["step"] == augmented.config.steps
    a, b = final_arrays(tmp_path / "whole"), final_arrays(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)
    assert resumed["test"] == whole["test"]
    saved = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert saved["augment"] == AUGMENT

"""A meta weighting wired into a run: every train batch carries a meta batch of the training
split in its own order (never the validation or test split), both streams resume exactly from
the checkpoint's data state, and a run stopped and resumed in-process ends bit-identical to an
uninterrupted one; auxiliary tasks make Auto-Lambda's primary tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtl_jax.data.meta import META_PREFIX, STATE_FORMAT, meta_seed, split_meta
from mtl_jax.errors import ConfigError
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.experiment import Experiment
from mtl_jax.training.loop import train
from tests.helpers import StopAfter, assert_same_batches, take
from tests.training.small_run import tiny_config


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    return Experiment.from_config(tiny_config(aggregator="auto_lambda", steps=6, checkpoint__every=3))


def test_each_batch_carries_a_meta_batch_of_the_training_split_in_another_order(experiment):
    config = experiment.config
    batches = take(experiment.train_batches(), 3)
    plain = take(experiment.data.train_batches("train", batch_size=config.batch_size, seed=config.seed), 3)
    meta = take(experiment.data.train_batches("train", batch_size=config.batch_size, seed=meta_seed(config.seed)), 3)
    for batch, x, m in zip(batches, plain, meta):
        main, extra = split_meta(batch)
        assert_same_batches([main], [x])
        assert_same_batches([extra], [m])
        assert any(key.startswith(META_PREFIX) for key in batch)
        assert not np.array_equal(extra["image"], main["image"])
    assert meta_seed(config.seed) != config.seed and meta_seed(config.seed) == meta_seed(config.seed)


def test_a_restored_stream_continues_both_streams(experiment):
    batches = experiment.train_batches()
    take(batches, 5)
    state = json.loads(json.dumps(batches.get_state()))
    assert state["format"] == STATE_FORMAT and state["train"]["step"] == 5 and state["meta"]["step"] == 5
    continued = take(batches, 3)
    restored = experiment.train_batches()
    restored.set_state(state)
    assert_same_batches(take(restored, 3), continued)
    with pytest.raises(Exception, match="meta batch"):
        experiment.train_batches().set_state(state["train"])  # a plain run's state: refused


def test_a_run_stopped_and_resumed_ends_bit_identical(experiment, tmp_path):
    whole = train(experiment, workdir=tmp_path / "whole", progress=False)
    stopped = train(experiment, workdir=tmp_path / "resumed", progress=False, hooks=(StopAfter(4),))
    assert stopped["step"] == 4
    checkpointer = Checkpointer(tmp_path / "resumed" / "checkpoints", read_only=True)
    data = checkpointer.restore_extra(4)["data"]
    checkpointer.close()
    assert data["format"] == STATE_FORMAT and data["meta"]["step"] == 4  # the meta position is saved
    resumed = train(experiment, workdir=tmp_path / "resumed", progress=False)
    assert whole["step"] == resumed["step"] == 6
    finals = []
    for run in ("whole", "resumed"):
        checkpointer = Checkpointer(tmp_path / run / "checkpoints", read_only=True)
        finals.append(checkpointer.restore_arrays(6)[0])
        checkpointer.close()
    assert finals[0].keys() == finals[1].keys()
    assert any("weights" in name for name in finals[0])  # λ is checkpointed with the parameters
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name], finals[1][name], err_msg=name, strict=True)
    assert resumed["test"] == whole["test"]


def test_auxiliary_tasks_make_the_primary_tasks_of_auto_lambda(experiment):
    config = tiny_config(aggregator="auto_lambda", auxiliary_tasks=["right"])
    built = Experiment.from_config(config, data=experiment.data)
    assert built.aggregator.name == "auto_lambda"
    with pytest.raises(ConfigError, match="primary"):
        Experiment.from_config(tiny_config(aggregator="auto_lambda", auxiliary_tasks=["right"],
                                           aggregator_options={"primary": [0]}), data=experiment.data)


@pytest.mark.parametrize("changes,message", [
    ({"mode": "representation"}, "supports only full"),
    ({"aggregator_options": {"primary": [5]}}, r"primary \[5\].*\[0, 2\)"),
    ({"aggregator_options": {"inner_learning_rate": 0.0}}, "inner_learning_rate > 0"),
])  # fmt: skip
def test_bad_options_are_one_line_config_errors(experiment, changes, message):
    with pytest.raises(ConfigError, match=message) as error:
        Experiment.from_config(tiny_config(aggregator="auto_lambda", **changes), data=experiment.data)
    assert "\n" not in str(error.value)

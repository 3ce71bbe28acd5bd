"""One road for batches: single and mixed datasets read alike, keyword-only, and the config
checked against the data's tasks and splits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mtl_jax.data.mix import mix
from mtl_jax.data.opened import OpenDataset
from mtl_jax.data.pipeline import EXAMPLE_MASK, stack_examples
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.training import data_source
from tests.training.small_run import tiny_config


def feature_dataset(rng: np.random.Generator, name: str, task: str, size: int) -> OpenDataset:
    examples = [{"x": rng.standard_normal(6).astype(np.float32), task: np.int32(rng.integers(3))} for _ in range(size)]
    spec = DatasetSpec(name, InputSpec("features", "x", (6,)), (TaskSpec(task, "classification", 3),))
    return OpenDataset(spec, {"train": examples, "test": examples[:10]}, stack_examples)


def datasets(rng):
    single = feature_dataset(rng, "a", "first", 40)
    return {"single": single, "mixed": mix([single, feature_dataset(rng, "bb", "second", 24)], "round_robin")}


@pytest.mark.parametrize("kind", ["single", "mixed"])
def test_single_and_mixed_datasets_are_read_the_same_way(rng, kind):
    data = datasets(rng)[kind]
    assert set(data.splits) == {"train", "test"}
    stream = data.train_batches("train", batch_size=4, seed=3, process_index=0, process_count=1)
    first = [next(stream) for _ in range(3)]
    position = stream.get_state()
    expected = next(stream)
    stream.set_state(position)
    np.testing.assert_array_equal(next(stream)["x"], expected["x"])
    assert all(batch["x"].shape == (4, 6) for batch in first)
    evaluation = list(data.eval_batches("test", batch_size=4))
    assert all(isinstance(batch, dict) and batch["x"].shape == (4, 6) for batch in evaluation)
    counted = sum(int(batch[EXAMPLE_MASK].sum()) for batch in evaluation)
    assert counted == (10 if kind == "single" else 20)  # each example once, padding masked
    for task in data.spec.tasks:
        assert all(task.mask_key in batch for batch in evaluation)


@pytest.mark.parametrize("kind", ["single", "mixed"])
def test_batch_size_and_seed_are_keyword_only(rng, kind):
    data = datasets(rng)[kind]
    with pytest.raises(TypeError):
        data.train_batches("train", 4, 3)
    with pytest.raises(TypeError):
        data.eval_batches("test", 4)


def test_tasks_splits_and_metric_are_checked_against_the_dataset(rng):
    config = tiny_config()
    spec = DatasetSpec("two", InputSpec("features", "x", (6,)), (TaskSpec("left", "classification", 3),
                                                                    TaskSpec("right", "regression", 1)))  # fmt: skip
    assert [t.name for t in data_source.select_tasks(config, spec, ["train", "validation", "test"])] == ["left", "right"]
    with pytest.raises(ConfigError, match="'test_split' is 'test'.*Accepted values: train, validation"):
        data_source.select_tasks(config, spec, ["train", "validation"])
    regression_only = dataclasses.replace(config, tasks=("right",), best_metric="right/accuracy")
    with pytest.raises(ConfigError, match=r"best_metric \(metric part\).*Accepted values: loss, mae"):
        data_source.select_tasks(regression_only, spec, ["train", "validation", "test"])


def test_labels_that_do_not_fit_are_found_before_compiling():
    left = TaskSpec("left", "classification", 3)
    data_source.check_labels_fit({"left": np.array([0, 2, 1])}, [left])
    with pytest.raises(DataError, match="label 3 does not fit the head's 3 classes"):
        data_source.check_labels_fit({"left": np.array([0, 3]), "left_mask": np.array([True, True])}, [left])
    data_source.check_labels_fit({"left": np.array([0, 3]), "left_mask": np.array([True, False])}, [left])  # masked

"""open_dataset on small slices: specs, batch conventions, vocabulary file, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data import text
from mtl_jax.data.datasets import DATASETS, open_dataset
from mtl_jax.errors import DataError

SLICES = {
    "dante_tweets": {"limit": 200},
    "turkish_ud": {"limit": 100},
    "multi_mnist": {"num_train": 40, "num_test": 16},
    "qm9": {"limit": 150, "num_test": 30, "num_validation": 20},
    "yeast": {"limit": 300},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


def first_batch(opened, size: int = 8) -> dict:
    return next(opened.train_batches("train", batch_size=size, seed=0, process_index=0, process_count=1))


def check_conventions(opened, batch: dict) -> None:
    """Every task's labels and mask exist with the spec's shapes and ranges."""
    size = len(batch[opened.spec.input.key])
    for task in opened.spec.tasks:
        labels, mask = batch[task.label_key], batch[task.mask_key]
        assert mask.dtype == bool and labels.shape[0] == mask.shape[0] == size
        if task.kind in ("classification", "tagging"):
            assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < task.num_outputs
        if task.kind == "tagging":
            np.testing.assert_array_equal(mask, batch["tokens_mask"])
        if task.kind == "multilabel":
            assert labels.shape == (size, task.num_outputs) and set(np.unique(labels)) <= {0.0, 1.0}


def test_registry_describes_six_datasets() -> None:
    assert set(DATASETS) == {"dante_tweets", "turkish_ud", "multi_mnist", "multi_fashion", "qm9", "yeast"}
    assert all(entry.description for entry in DATASETS.values())


def test_dante_tweets_text_batches_and_vocabulary_from_train(data_dir: Path) -> None:
    opened = open_dataset("dante_tweets", data_dir, **SLICES["dante_tweets"])
    assert [t.name for t in opened.spec.tasks][:2] == ["upos", "trust"]
    assert opened.spec.task("upos").num_outputs == 17 and opened.spec.task("fear").num_outputs == 2
    batch = first_batch(opened)
    check_conventions(opened, batch)
    assert batch["tokens"].shape[1] in opened.buckets
    # vocabulary: train tokens only; a token seen only outside train is unknown (id 1)
    train_tokens = {text.as_text(t) for e in opened.splits["train"] for t in e["tokens"]}
    assert set(opened.vocabulary[2:]) == train_tokens
    test_example = opened.splits["test"][0]
    encoded = opened.collate([test_example])
    for token, token_id in zip(test_example["tokens"], encoded["tokens"][0]):
        assert token_id == (opened.vocabulary.index(text.as_text(token)) if text.as_text(token) in train_tokens else 1)
    # emotion masks follow the stored masks
    np.testing.assert_array_equal(encoded["joy_mask"], [test_example["joy_mask"]])


def test_vocabulary_file_is_reused_and_checked(data_dir: Path) -> None:
    opened = open_dataset("dante_tweets", data_dir, **SLICES["dante_tweets"])
    (path,) = (data_dir / "dante_tweets").glob("*/text-*.json")
    saved = json.loads(path.read_text())
    assert saved["tokens"] == list(opened.vocabulary) and saved["format"] == text.TEXT_FORMAT
    saved["tokens"] = saved["tokens"][:2] + ["only-in-file"]
    path.write_text(json.dumps(saved))
    assert open_dataset("dante_tweets", data_dir, **SLICES["dante_tweets"]).vocabulary[2] == "only-in-file"
    good = path.read_text()
    try:
        path.write_text(good[: len(good) // 2])  # truncated
        with pytest.raises(DataError, match=f"{path}.*corrupt"):
            open_dataset("dante_tweets", data_dir, **SLICES["dante_tweets"])
        path.write_text(json.dumps({**saved, "format": "mtl_jax.text/0"}))
        with pytest.raises(DataError, match="format"):
            open_dataset("dante_tweets", data_dir, **SLICES["dante_tweets"])
        assert path.exists()  # nothing deleted
    finally:
        path.unlink()


def test_turkish_ud_tag_sets_from_train(data_dir: Path) -> None:
    opened = open_dataset("turkish_ud", data_dir, **SLICES["turkish_ud"])
    assert [t.name for t in opened.spec.tasks] == ["coarse_pos", "fine_pos", "morph", "deprel"]
    check_conventions(opened, first_batch(opened))
    morph = opened.spec.task("morph")
    assert morph.class_names[-1] == "<unseen>"
    batches = list(opened.eval_batches("train", batch_size=16))
    seen = np.concatenate([b["morph"][b["morph_mask"]] for b in batches])
    assert set(seen.tolist()) == set(range(morph.num_outputs - 1))  # every train tag, never <unseen>
    assert all(b["tokens"].shape[1] == opened.buckets[-1] for b in batches)


def test_qm9_graph_batches_and_target_units(data_dir: Path) -> None:
    opened = open_dataset("qm9", data_dir, **SLICES["qm9"])
    batch = next(opened.eval_batches("test", batch_size=8))
    check_conventions(opened, batch)
    assert batch["atomic_numbers"].shape == (8, 29) and batch["positions"].shape == (8, 29, 3)
    examples = [opened.splits["test"][i] for i in range(8)]
    np.testing.assert_array_equal(batch["atoms_mask"].sum(1), [e["num_atoms"] for e in examples])
    assert (batch["atomic_numbers"][~batch["atoms_mask"]] == 0).all()
    for k, task in enumerate(opened.spec.tasks):
        original = batch[task.label_key].astype(np.float64) * task.target_std + task.target_mean
        np.testing.assert_allclose(original, [e["targets"][k] for e in examples], rtol=1e-4, atol=1e-4)


def test_images_and_yeast(data_dir: Path) -> None:
    mnist = open_dataset("multi_mnist", data_dir, **SLICES["multi_mnist"])
    assert sorted(mnist.splits) == ["test", "train"]
    batch = first_batch(mnist)
    check_conventions(mnist, batch)
    assert batch["image"].shape == (8, 28, 28) and batch["left_mask"].all()
    yeast = open_dataset("yeast", data_dir, **SLICES["yeast"])
    batch = next(yeast.eval_batches("validation", batch_size=8))
    check_conventions(yeast, batch)
    np.testing.assert_array_equal(batch["functions"], [yeast.splits["validation"][i]["labels"] for i in range(8)])


def test_bad_names_and_options(data_dir: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        open_dataset("mnist", data_dir)
    with pytest.raises(DataError, match="unknown options.*min_count"):
        open_dataset("yeast", data_dir, min_count=2)
    with pytest.raises(DataError, match="would be empty"):
        open_dataset("yeast", data_dir, limit=1)


@pytest.mark.parametrize("name", ["dante_tweets", "qm9", "multi_mnist"])
def test_precollated_columns_give_the_batches_of_direct_collation(data_dir: Path, name: str) -> None:
    """OpenDataset batches from its column store equal reading + collating the raw source."""
    from mtl_jax.data import pipeline  # noqa: PLC0415

    opened = open_dataset(name, data_dir, **SLICES[name])
    lengths = None if opened.lengths is None else opened.lengths["train"]
    direct = pipeline.train_batches(
        opened.splits["train"], 8, 3, collate=opened.collate, lengths=lengths, buckets=opened.buckets,
        process_index=0, process_count=1,
    )  # fmt: skip
    columns = opened.train_batches("train", batch_size=8, seed=3, process_index=0, process_count=1)
    for _ in range(5):
        expected, got = next(direct), next(columns)
        assert sorted(expected) == sorted(got)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    raw_eval = list(pipeline.eval_batches(opened.splits["test"], 8, opened.collate, label_keys=opened.label_keys, length=opened.max_length))
    for expected, got in zip(raw_eval, opened.eval_batches("test", batch_size=8), strict=True):
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)

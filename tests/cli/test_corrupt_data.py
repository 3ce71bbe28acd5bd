"""Corrupt prepared data through the real entry point: a truncated, overwritten, emptied or
deleted ``array_record`` shard of any split, a missing or unparsable ``dataset_info.json`` /
``metadata.json``, and a vocabulary file that does not fit the prepared text. Each is one
``DataError`` line naming the file and the fix, exit 2, no traceback, before step 1 (also
for the test split, and for the second dataset of a mixed run), and neither the run
directory (a finished run, with ``--overwrite``) nor the data directory changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from mtl_jax.cli.main import main
from mtl_jax.data.datasets import open_dataset
from mtl_jax.training.experiment import Experiment
from tests.cli.conftest import assert_refused, checksums
from tests.training.small_run import ROOT, TINY, tiny_config, train_args

MNIST = {"num_train": TINY["dataset_options.num_train"], "num_test": TINY["dataset_options.num_test"]}
TEXT_LIMIT = 200
MNIST_DIR = "multi_mnist/numtest200-numtrain600"
DANTE_DIR = f"dante_tweets/limit{TEXT_LIMIT}"
TURKISH_DIR = f"turkish_ud/limit{TEXT_LIMIT}"
VERSION = "1.0.0"
DANTE_ARGS = [
    "--config", str(ROOT / "experiments" / "dante_pos_emotions_pcgrad.py"),
    "--set", f"dataset_options={{'limit': {TEXT_LIMIT}}}", "--set", "model.hidden=8", "--set", "steps=2",
]  # fmt: skip
MIXED_ARGS = [
    "--config", str(ROOT / "experiments" / "mixed_turkish_pos_dante_emotions_upgrad.py"),
    "--set", f"dataset_options={{'turkish_ud': {{'limit': {TEXT_LIMIT}}}, 'dante_tweets': {{'limit': {TEXT_LIMIT}}}}}",
    "--set", "model.hidden=8", "--set", "steps=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A data directory with tiny MultiMNIST, DANTEStocks and Turkish UD prepared (and the
    text datasets' vocabulary files written); each test corrupts a copy of it."""
    directory = tmp_path_factory.mktemp("prepared")
    open_dataset("multi_mnist", directory, **MNIST)
    open_dataset("dante_tweets", directory, limit=TEXT_LIMIT)
    open_dataset("turkish_ud", directory, limit=TEXT_LIMIT)
    return directory


@pytest.fixture
def data_dir(prepared, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the prepared data, which the run reads through MTL_JAX_DATA_DIR."""
    copy = tmp_path / "data"
    shutil.copytree(prepared, copy)
    monkeypatch.setenv("MTL_JAX_DATA_DIR", str(copy))
    return copy


def shard(data_dir: Path, dataset_dir: str, split: str) -> Path:
    name = dataset_dir.split("/")[0]
    return data_dir / dataset_dir / VERSION / f"{name}-{split}.array_record-00000-of-00001"


# --------------------------------------------------------------------------- corruptions


def truncate(path: Path, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * rng.uniform(0.05, 0.95))])


def overwrite(path: Path, rng: np.random.Generator) -> None:
    """64 random bytes at a random place among the records: the chunks fill the start of a
    shard, then zero padding runs up to the footer's 64 KiB block, which no record reads."""
    data = bytearray(path.read_bytes())
    start = int(rng.integers(0, records_end(data) - 64))
    data[start : start + 64] = rng.bytes(64)
    path.write_bytes(bytes(data))


def records_end(data: bytes, gap: int = 1024) -> int:
    """Where the first run of ``gap`` zero bytes starts (the end of the record chunks)."""
    end = bytes(data).find(bytes(gap))
    assert end > 64, "a shard without records"
    return end


def empty(path: Path, rng: np.random.Generator) -> None:
    path.write_bytes(b"")


def delete(path: Path, rng: np.random.Generator) -> None:
    path.unlink()


def garble(path: Path, rng: np.random.Generator) -> None:
    path.write_text('{"name": "multi_mnist", "splits": [' + "".join(rng.choice(list("{[,:"), 5)))


SHARD_CASES = [
    (truncate, MNIST_DIR, "test", "is corrupt or truncated"),
    (truncate, MNIST_DIR, "train", "is corrupt or truncated"),
    (overwrite, MNIST_DIR, "test", "is corrupt or truncated"),
    (overwrite, MNIST_DIR, "train", "is corrupt or truncated"),
    (empty, MNIST_DIR, "test", "is corrupt or truncated"),
    (delete, MNIST_DIR, "test", "is missing"),
    (delete, MNIST_DIR, "train", "is missing"),
    (truncate, DANTE_DIR, "validation", "is corrupt or truncated"),
    (overwrite, DANTE_DIR, "test", "is corrupt or truncated"),
]


@pytest.mark.parametrize(
    "corrupt, dataset_dir, split, problem", SHARD_CASES, ids=[f"{c[0].__name__}-{c[1][:5]}-{c[2]}" for c in SHARD_CASES]
)
def test_a_corrupt_shard_is_one_line_naming_it_and_nothing_changes(
    data_dir, finished_run, capsys, rng, corrupt, dataset_dir, split, problem
):
    path = shard(data_dir, dataset_dir, split)
    corrupt(path, rng)
    before_run, before_data = checksums(finished_run), checksums(data_dir)
    args = train_args(finished_run, "--overwrite") if dataset_dir == MNIST_DIR else text_args(DANTE_ARGS, finished_run)
    code = main(args)
    err = capsys.readouterr().err
    assert_refused(code, err, f"the prepared {split!r} split cannot be read: {path} {problem}")
    assert f"fix: delete {data_dir / dataset_dir} and run the same command again" in err
    assert checksums(finished_run) == before_run and checksums(data_dir) == before_data


def text_args(config_args: list[str], run: Path) -> list[str]:
    return ["train", *config_args, "--workdir", str(run), "--quiet", "--overwrite"]


INFO_CASES = [
    (delete, "dataset_info.json", "was written by another version (format None"),
    (delete, "metadata.json", "was written by another version (format None"),
    (garble, "dataset_info.json", "cannot be read (ParseError"),
    (garble, "metadata.json", "cannot be read (JSONDecodeError"),
]


@pytest.mark.parametrize("corrupt, name, pattern", INFO_CASES, ids=[f"{c[0].__name__}-{c[1]}" for c in INFO_CASES])
def test_missing_or_unparsable_dataset_info_is_one_line_and_nothing_changes(
    data_dir, finished_run, capsys, rng, corrupt, name, pattern
):
    corrupt(data_dir / MNIST_DIR / VERSION / name, rng)
    before_run, before_data = checksums(finished_run), checksums(data_dir)
    err = run_refused(train_args(finished_run, "--overwrite"), capsys, pattern)
    assert "multi_mnist" in err and "prepare again" in err
    assert checksums(finished_run) == before_run and checksums(data_dir) == before_data


def run_refused(args: list[str], capsys: pytest.CaptureFixture, pattern: str) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert_refused(code, err, pattern)
    return err


# --------------------------------------------------------------------------- vocabulary files


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(json.dumps(content), encoding="utf-8")


def drop_a_length(content: dict, rng: np.random.Generator) -> None:
    lengths = content["lengths"]["test"]
    del lengths[int(rng.integers(len(lengths)))]


def change_a_length(content: dict, rng: np.random.Generator) -> None:
    """One test sentence's saved length off by 1..3 (still a plausible positive length)."""
    lengths = content["lengths"]["test"]
    index = int(rng.integers(len(lengths)))
    shift = int(rng.choice([1, 2, 3]))
    lengths[index] = lengths[index] - shift if lengths[index] > shift else lengths[index] + shift


def swap_two_tags(content: dict, rng: np.random.Generator) -> None:
    tags = content["tags"]["upos"]
    i, j = rng.choice(len(tags), 2, replace=False)
    tags[i], tags[j] = tags[j], tags[i]


def repeat_a_token(content: dict, rng: np.random.Generator) -> None:
    tokens = content["tokens"]
    tokens.append(tokens[int(rng.integers(2, len(tokens)))])


def drop_the_lengths(content: dict, rng: np.random.Generator) -> None:
    del content["lengths"]


def other_format(content: dict, rng: np.random.Generator) -> None:
    content["format"] = "mtl_jax.text/0"


VOCABULARY_CASES = [
    (drop_a_length, f"sequence lengths for the {TEXT_LIMIT // 10} examples of split 'test'"),
    (change_a_length, "saved sequence lengths of split 'test'"),
    (swap_two_tags, "the tag set of 'upos' is not this dataset's 17 tags"),
    (repeat_a_token, "'tokens' is not a list of distinct strings"),
    (drop_the_lengths, "lacks 'lengths' (truncated?)"),
    (other_format, "has format 'mtl_jax.text/0'"),
]


@pytest.mark.parametrize("change, pattern", VOCABULARY_CASES, ids=[c[0].__name__ for c in VOCABULARY_CASES])
def test_a_vocabulary_file_that_does_not_fit_is_one_line_naming_it(data_dir, finished_run, capsys, rng, change, pattern):
    path = data_dir / DANTE_DIR / f"text-{VERSION}.json"
    edit_json(path, lambda content: change(content, rng))
    before_run, before_data = checksums(finished_run), checksums(data_dir)
    err = run_refused(text_args(DANTE_ARGS, finished_run), capsys, pattern)
    assert str(path) in err and "fix:" in err
    assert checksums(finished_run) == before_run and checksums(data_dir) == before_data


def test_a_truncated_vocabulary_file_is_one_line_naming_it(data_dir, finished_run, capsys, rng):
    path = data_dir / DANTE_DIR / f"text-{VERSION}.json"
    truncate(path, rng)
    before_run, before_data = checksums(finished_run), checksums(data_dir)
    err = run_refused(text_args(DANTE_ARGS, finished_run), capsys, "is corrupt or truncated")
    assert str(path) in err
    assert checksums(finished_run) == before_run and checksums(data_dir) == before_data


# --------------------------------------------------------------------------- mixed runs, fresh runs, the fix


def test_the_second_datasets_corrupt_test_split_of_a_mixed_run_is_found_before_step_1(data_dir, tmp_path, capsys, rng):
    """Evaluation reads the mixed datasets in turn; the check before step 1 reads them all."""
    path = shard(data_dir, DANTE_DIR, "test")
    overwrite(path, rng)
    run = tmp_path / "fresh"
    before_data = checksums(data_dir)
    run_refused(text_args(MIXED_ARGS, run), capsys, f"the prepared 'test' split cannot be read: {path}")
    assert not run.exists() and checksums(data_dir) == before_data


def test_a_mixed_runs_tag_set_without_unseen_is_one_line(data_dir, finished_run, capsys):
    path = data_dir / TURKISH_DIR / f"text-{VERSION}.json"
    edit_json(path, lambda content: content["tags"]["coarse_pos"].pop())
    before_run, before_data = checksums(finished_run), checksums(data_dir)
    run_refused(text_args(MIXED_ARGS, finished_run), capsys, "the tag set of 'coarse_pos' is not distinct tags")
    assert checksums(finished_run) == before_run and checksums(data_dir) == before_data


def test_the_named_fix_works_a_corrupt_test_split_then_deleted_and_prepared_again(data_dir, tmp_path, capsys, rng):
    """Before training starts: the run directory is never created. Then the fix the line
    names (delete the prepared directory) lets the same config pass every check: the data
    is prepared again and each split read in full (what `mtl-jax train` does before step 1)."""
    truncate(shard(data_dir, MNIST_DIR, "test"), rng)
    run = tmp_path / "fresh"
    err = run_refused(train_args(run), capsys, "the prepared 'test' split cannot be read")
    assert not run.exists()
    named = Path(err.split("fix: delete ")[1].split(" and run the same command")[0])
    assert named == data_dir / MNIST_DIR
    shutil.rmtree(named)
    experiment = Experiment.from_config(tiny_config())
    assert shard(data_dir, MNIST_DIR, "test").is_file() and not run.exists()
    assert len(experiment.data.splits["test"]) == MNIST["num_test"]

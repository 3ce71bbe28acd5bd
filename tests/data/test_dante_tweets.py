"""DANTEStocks builder: raw-source counts, emotion mapping, a small prepared slice, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data.builders import dante_tweets
from mtl_jax.errors import DataError

LIMIT = 120


@pytest.fixture(scope="module")
def tweets() -> list[dict]:
    return dante_tweets.read_tweets(dante_tweets.source_files())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dante")


def test_full_source_has_4048_labelled_tweets(tweets: list[dict]) -> None:
    assert len(tweets) == dante_tweets.NUM_TWEETS == 4048
    for tweet in tweets[:200]:
        assert len(tweet["tokens"]) == len(tweet["upos"]) > 0
        assert 0 <= tweet["upos"].min() and tweet["upos"].max() < len(dante_tweets.UPOS)
        assert set(tweet["emotion_codes"]) <= {-2, -1, 0, 1}


def test_emotion_code_mapping() -> None:
    labels, mask = dante_tweets.emotion_labels(np.array([-2, -1, 0, 1]))
    assert labels.tolist() == [0, 0, 0, 1]
    assert mask.tolist() == [False, False, True, True]


def test_slice_splits_and_fields(data_dir: Path) -> None:
    sizes = {split: len(dante_tweets.load(split, data_dir, limit=LIMIT)) for split in ("train", "validation", "test")}
    assert sizes == {"train": 96, "validation": 12, "test": 12}
    example = dante_tweets.load("train", data_dir, limit=LIMIT)[0]
    assert len(example["tokens"]) == len(example["upos"])
    for name, code in zip(dante_tweets.EMOTIONS, example["emotion_codes"]):
        assert example[name] == int(code == 1)
        assert example[f"{name}_mask"] == (code >= 0)


def _ids(data_dir: Path, **config: object) -> set[bytes]:
    return {example["id"] for example in dante_tweets.load("test", data_dir, limit=LIMIT, **config)}


def test_split_is_deterministic_given_seed(data_dir: Path, tmp_path: Path) -> None:
    assert _ids(data_dir) == _ids(tmp_path)
    assert _ids(data_dir) != _ids(data_dir, seed=1)


def test_truncated_conllu_raises_without_touching_prepared_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_dir: Path
) -> None:
    files = dante_tweets.source_files()
    text = files["pos"].read_text(encoding="utf-8")
    truncated = tmp_path / "POS.conllu"
    truncated.write_text(text[: len(text) // 2 - 7], encoding="utf-8")
    monkeypatch.setattr(dante_tweets, "source_files", lambda: {**files, "pos": truncated})
    with pytest.raises(DataError, match="dante_tweets.*POS.conllu.*fix: pip install") as error:
        dante_tweets.load("train", data_dir, limit=LIMIT, seed=7)
    assert str(truncated) in str(error.value)
    assert len(dante_tweets.load("train", data_dir, limit=LIMIT)) == 96  # earlier slice still there


def test_emotion_code_out_of_range_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = dante_tweets.source_files()
    lines = files["emotion"].read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    fields[1] = "7"
    bad = tmp_path / "emotion.csv"
    bad.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]), encoding="utf-8")
    with pytest.raises(DataError, match="emotion codes out of range"):
        dante_tweets.read_tweets({**files, "emotion": bad})


def test_missing_package_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps"):
        dante_tweets.source_files()

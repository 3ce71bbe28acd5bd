"""Shared builder helpers: data directory, config names, seeded splits, prepared-data checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data.sources import mnist_overlay as multi_mnist_module
from mtl_jax.data.builders import common, yeast
from mtl_jax.errors import DataError


def test_data_error_moved_but_still_importable_from_multi_mnist() -> None:
    assert multi_mnist_module.DataError is DataError
    assert issubclass(DataError, ValueError)


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(common.DATA_DIR_ENV, raising=False)
    assert common.resolve_data_dir() == Path("~/.cache/mtl_jax/tensorflow_datasets").expanduser()
    monkeypatch.setenv(common.DATA_DIR_ENV, str(tmp_path / "env"))
    assert common.resolve_data_dir() == tmp_path / "env"
    assert common.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_config_names_encode_non_default_fields() -> None:
    assert common.config_name(yeast.YeastConfig) == "default"
    assert common.config_name(yeast.YeastConfig, seed=0) == "default"
    assert common.config_name(yeast.YeastConfig, seed=3, limit=50) == "limit50-seed3"


def test_seeded_split_is_a_deterministic_partition() -> None:
    first = common.seeded_split("toy", 100, 0, 10, 20)
    again = common.seeded_split("toy", 100, 0, 10, 20)
    other = common.seeded_split("toy", 100, 1, 10, 20)
    assert {k: len(v) for k, v in first.items()} == {"train": 70, "validation": 20, "test": 10}
    assert np.array_equal(np.sort(np.concatenate(list(first.values()))), np.arange(100))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], other["test"])


def test_empty_split_raises() -> None:
    with pytest.raises(DataError, match="split 'train' would be empty"):
        common.seeded_split("toy", 30, 0, 10, 20)


def test_env_var_directory_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(common.DATA_DIR_ENV, str(tmp_path))
    assert len(yeast.load("validation", limit=200)) > 0
    assert (tmp_path / "yeast" / "limit200" / "1.0.0").is_dir()


def _prepared_dir(tmp_path: Path) -> Path:
    yeast.load("train", data_dir=tmp_path, limit=200)
    return tmp_path / "yeast" / "limit200" / "1.0.0"


def test_other_format_revision_raises_and_keeps_files(tmp_path: Path) -> None:
    directory = _prepared_dir(tmp_path)
    metadata = directory / "metadata.json"
    values = json.loads(metadata.read_text())
    values[common.FORMAT_KEY] = "yeast/0.1.0/format-0"
    metadata.write_text(json.dumps(values))
    files_before = sorted(p.name for p in directory.iterdir())
    with pytest.raises(DataError, match="written by another version") as error:
        yeast.load("train", data_dir=tmp_path, limit=200)
    assert str(directory) in str(error.value) and "remove that directory yourself" in str(error.value)
    assert sorted(p.name for p in directory.iterdir()) == files_before


def test_unreadable_prepared_dir_raises_and_keeps_files(tmp_path: Path) -> None:
    directory = _prepared_dir(tmp_path)
    (directory / "dataset_info.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot be read"):
        yeast.load("train", data_dir=tmp_path, limit=200)
    assert (directory / "dataset_info.json").read_text() == "{not json"


def test_unknown_split_raises(tmp_path: Path) -> None:
    _prepared_dir(tmp_path)
    with pytest.raises(DataError, match="no split 'dev'"):
        yeast.load("dev", data_dir=tmp_path, limit=200)

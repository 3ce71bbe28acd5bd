"""Yeast builder: full raw-source shape, seeded split, a small slice, bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data.builders import yeast
from mtl_jax.errors import DataError


def test_full_source_shape_and_labels() -> None:
    features, labels = yeast.read_table(yeast.source_file())
    assert features.shape == (2417, 103) and labels.shape == (2417, 14)
    assert set(np.unique(labels)) == {0, 1}
    assert yeast.held_out_sizes(2417) == (917, 150)


def test_slice_sizes_fields_and_determinism(tmp_path: Path) -> None:
    sizes = {s: len(yeast.load(s, tmp_path, limit=300)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 167, "validation": 19, "test": 114}
    example = yeast.load("train", tmp_path, limit=300)[0]
    assert example["features"].shape == (103,) and example["labels"].shape == (14,)
    assert [example[f"class_{k}"] for k in range(1, 15)] == example["labels"].tolist()
    first = sorted(e["features"].tobytes() for e in yeast.load("test", tmp_path, limit=300))
    again = sorted(e["features"].tobytes() for e in yeast.load("test", tmp_path / "again", limit=300))
    other = sorted(e["features"].tobytes() for e in yeast.load("test", tmp_path, limit=300, seed=1))
    assert first == again and first != other


def _write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_truncated_gzip_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = yeast.source_file().read_bytes()
    truncated = tmp_path / "yeast.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(yeast, "source_file", lambda: truncated)
    with pytest.raises(DataError, match=r"yeast: source file .*yeast\.csv\.gz.*pip install"):
        yeast.load("train", tmp_path)


def test_missing_rows_and_bad_labels_raise(tmp_path: Path) -> None:
    lines = gzip.decompress(yeast.source_file().read_bytes()).decode().splitlines()
    with pytest.raises(DataError, match="found 100 rows"):
        yeast.read_table(_write_gz(tmp_path / "short.csv.gz", "\n".join(lines[:101])))
    fields = lines[1].split(",")
    fields[-1] = "2"
    bad = "\n".join([lines[0], ",".join(fields), *lines[2:]])
    with pytest.raises(DataError, match="labels out of range"):
        yeast.read_table(_write_gz(tmp_path / "bad.csv.gz", bad))

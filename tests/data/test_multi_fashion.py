"""MultiFashion builder on a few pairs (never the full 60,000): counts, labels, determinism, bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data.sources import fashion_mnist
from mtl_jax.data.builders import multi_fashion
from mtl_jax.errors import DataError

SIZES = {"num_train": 48, "num_test": 16}


def test_source_counts_and_labels() -> None:
    source = fashion_mnist.load_fashion_mnist(multi_fashion.source_dir())
    assert source["train"][0].shape == (60_000, 28, 28) and source["test"][0].shape == (10_000, 28, 28)
    assert np.bincount(source["train"][1]).tolist() == [6000] * 10
    assert np.bincount(source["test"][1]).tolist() == [1000] * 10


def _sorted(examples) -> list[tuple[int, int, bytes]]:
    return sorted((int(e["left"]), int(e["right"]), e["image"].tobytes()) for e in examples)


def test_slice_and_determinism(tmp_path: Path) -> None:
    train = multi_fashion.load("train", tmp_path, **SIZES)
    assert len(train) == 48 and len(multi_fashion.load("test", tmp_path, **SIZES)) == 16
    assert all(0 <= e["left"] <= 9 and 0 <= e["right"] <= 9 for e in train)
    assert train[0]["image"].shape == (28, 28) and train[0]["image"].dtype == np.float32
    again = multi_fashion.load("train", tmp_path / "again", **SIZES)
    other = multi_fashion.load("train", tmp_path, seed=9, **SIZES)
    assert _sorted(train) == _sorted(again) and _sorted(train) != _sorted(other)


def test_chunking_keeps_counts() -> None:
    images = np.zeros((10, 28, 28), np.uint8)
    labels = np.arange(10, dtype=np.int32)
    examples = multi_fashion.overlay.chunked_pairs(images, labels, 25, np.random.default_rng(0), chunk=10)
    assert len(examples) == 25 and all(e["left"] != e["right"] for e in examples)


def _copy_source(tmp_path: Path) -> Path:
    copy = tmp_path / "fashion"
    shutil.copytree(multi_fashion.source_dir(), copy)
    return copy


def test_truncated_or_missing_source_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = _copy_source(tmp_path)
    images = copy / "t10k-images-idx3-ubyte.gz"
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(multi_fashion, "source_dir", lambda: copy)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is corrupt or truncated.*apt-get install"):
        multi_fashion.load("train", tmp_path / "data", **SIZES)
    images.unlink()
    with pytest.raises(DataError, match="missing; fix: apt-get install dataset-fashion-mnist"):
        multi_fashion.load("train", tmp_path / "data", **SIZES)


def test_label_out_of_range_raises(tmp_path: Path) -> None:
    copy = _copy_source(tmp_path)
    labels_file = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels_file.read_bytes()))
    raw[8] = 12
    labels_file.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"labels out of range \[0, 9\]"):
        fashion_mnist.load_fashion_mnist(copy)

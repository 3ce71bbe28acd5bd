"""QM9 builder on a slice: units, atomization energies, split sizes, normalisation, bad input.

The full 130,831-molecule preparation never runs here: every test reads the first rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtl_jax.data.builders import common, qm9
from mtl_jax.errors import DataError

SLICE = {"limit": 150, "num_test": 30, "num_validation": 20}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qm9")


def test_methane_targets_in_benchmark_units() -> None:
    methane = qm9.read_molecules(qm9.source_files(), limit=1)[0]
    assert methane["index"] == 1 and methane["atomic_numbers"].tolist() == [6, 1, 1, 1, 1]
    assert methane["positions"].shape == (5, 3)
    expected = {"alpha": 13.21, "homo": -0.3877 * 27.211386246, "r2": 35.3641, "cv": 6.469}
    for name, value in expected.items():
        assert methane["targets"][qm9.TARGETS.index(name)] == pytest.approx(value, rel=1e-6)
    # U0 atomization: -40.47893 Ha minus C + 4 H references, about -17.17 eV.
    assert methane["targets"][qm9.TARGETS.index("u0")] == pytest.approx(-17.1722, abs=1e-3)
    assert np.all(methane["targets"][6:10] < 0)


def test_slice_split_sizes_shapes_and_normalisation(data_dir: Path) -> None:
    sizes = {s: len(qm9.load(s, data_dir, **SLICE)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 100, "validation": 20, "test": 30}
    builder = common.prepare(qm9.Qm9, data_dir, **SLICE)
    mean = np.array(builder.info.metadata["target_mean"])
    std = np.array(builder.info.metadata["target_std"])
    assert mean.shape == std.shape == (11,) and np.all(std > 0)
    train = qm9.load("train", data_dir, **SLICE)
    targets = np.stack([e["targets"] for e in train])
    normalised = np.stack([e["targets_normalized"] for e in train])
    np.testing.assert_allclose(normalised.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(normalised, (targets - mean) / std, rtol=1e-4, atol=1e-4)
    for example in train:
        n = example["num_atoms"]
        assert example["atomic_numbers"].shape == (n,) and example["positions"].shape == (n, 3)
        assert set(example["atomic_numbers"].tolist()) <= {1, 6, 7, 8, 9}


def test_split_deterministic_given_seed(data_dir: Path, tmp_path: Path) -> None:
    def test_ids(directory: Path, seed: int = 0) -> set[int]:
        return {int(e["index"]) for e in qm9.load("test", directory, seed=seed, **SLICE)}

    assert test_ids(data_dir) == test_ids(tmp_path)
    assert test_ids(data_dir) != test_ids(data_dir, seed=5)


def _truncated_copy(tmp_path: Path, cut: int) -> list[Path]:
    first = qm9.source_files()[0]
    with first.open(encoding="utf-8") as file:
        head = [next(file) for _ in range(20)]
    copy = tmp_path / "qm9_part1.csv"
    copy.write_text("".join(head)[:cut] if cut else "".join(head), encoding="utf-8")
    return [copy]


def test_truncated_csv_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parts = _truncated_copy(tmp_path, cut=6000)
    with pytest.raises(DataError, match=r"qm9: source file .*qm9_part1\.csv.*pip install"):
        qm9.read_molecules(parts, limit=19)
    whole = _truncated_copy(tmp_path, cut=0)  # well-formed, but far fewer than 130,831 molecules
    monkeypatch.setattr(qm9, "source_files", lambda: whole)
    with pytest.raises(DataError, match="found 19 molecules .* documents 130831"):
        qm9.load("train", tmp_path)


def test_unknown_element_raises(tmp_path: Path) -> None:
    path = _truncated_copy(tmp_path, cut=0)[0]
    path.write_text(path.read_text(encoding="utf-8").replace("['C','H','H','H','H']", "['C','H','H','H','Cl']"))
    with pytest.raises(DataError, match="elements out of range"):
        qm9.read_molecules([path], limit=5)


def test_empty_split_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split 'train' would be empty"):
        qm9.load("train", tmp_path, limit=40, num_test=30, num_validation=10)

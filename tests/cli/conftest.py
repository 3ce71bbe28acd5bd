"""Shared pieces of the bad-input and fault tests: checksums of the run and data directories,
a finished run in the way, and the one-line refusal check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mtl_jax.data.builders.common import resolve_data_dir
from mtl_jax.data.datasets import open_dataset
from tests.training.small_run import TINY, tiny_config


def checksums(directory: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file (``dir`` for directories) under ``directory``."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(directory.rglob("*"))
    }


def data_dir_state() -> dict[str, tuple[int, int]]:
    """Relative path -> (size, modification time in ns) of everything in the data directory.
    Cheaper than hashing it (a session may have prepared large datasets there); a write,
    a deletion or a new file or directory changes it."""
    directory = resolve_data_dir()
    return {
        str(path.relative_to(directory)): (path.stat().st_size if path.is_file() else -1, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
    }


@pytest.fixture(scope="session")
def tiny_data_prepared() -> None:
    """The tiny experiment's dataset, prepared before a case checksums the data directory, so
    a case that opens the data reads it and writes nothing."""
    open_dataset("multi_mnist", num_train=TINY["dataset_options.num_train"], num_test=TINY["dataset_options.num_test"])


@pytest.fixture
def data_before(tiny_data_prepared) -> dict[str, tuple[int, int]]:
    """The data directory's state before the test (:func:`data_dir_state`)."""
    return data_dir_state()


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A run directory as a finished run leaves it (config, logs, results, checkpoints)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "12" / "state").mkdir(parents=True)
    (run / "checkpoints" / "12" / "state" / "data").write_bytes(bytes(range(256)))
    (run / "config.json").write_text(json.dumps(tiny_config().to_dict(), indent=2))
    (run / "metrics.jsonl").write_text('{"step": 12, "split": "train"}\n')
    (run / "results.json").write_text('{"step": 12}\n')
    return run


def assert_refused(code: int, err: str, pattern: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert 1 <= len(lines) <= 3 and lines[0].startswith("mtl-jax: error: "), err
    assert "Traceback" not in err and pattern in err, err

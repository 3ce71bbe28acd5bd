"""Every experiment config under experiments/ trains (1 step), checkpoints and evaluates end to
end on a small slice of its dataset: configs must not rot as the code moves. One step, because
the text datasets bucket by length: a second step usually lands in another bucket and compiles
the whole train step again (a third of the test's time), which tests the loop, not the config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtl_jax.cli.main import main

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.py"))
SLICES = {
    "dante_tweets": {"limit": 200},
    "turkish_ud": {"limit": 120},
    "multi_mnist": {"num_train": 300, "num_test": 64},
    "multi_fashion": {"num_train": 300, "num_test": 64},
    "qm9": {"limit": 150, "num_test": 30, "num_validation": 30},
    "yeast": {"limit": 300},
}


def dataset_of(path: Path) -> str | list[str]:
    namespace: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102 - our own config
    return namespace["get_config"]()["dataset"]


def slice_of(dataset: str | list[str]) -> dict:
    if isinstance(dataset, str):
        return dict(SLICES[dataset])
    return {name: dict(SLICES[name]) for name in dataset}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_trains_and_evaluates_on_a_slice(tmp_path: Path, path: Path, capsys) -> None:
    dataset = dataset_of(path)
    if "multi_fashion" in ([dataset] if isinstance(dataset, str) else dataset):
        from mtl_jax.data.builders import multi_fashion  # noqa: PLC0415
        from mtl_jax.errors import DataError  # noqa: PLC0415

        try:
            multi_fashion.source_dir()
        except DataError as error:
            pytest.skip(f"Debian's dataset-fashion-mnist is not installed: {error}")
    sets = {
        "dataset_options": slice_of(dataset),
        "steps": 1, "batch_size": 16, "eval_batch_size": 32, "log_every": 1, "eval_every": 0,
        "checkpoint.every": 1,
    }  # fmt: skip
    args = ["train", "--config", str(path), "--workdir", str(tmp_path / "run"), "--json", "--quiet"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value!r}"]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["step"] == 1
    values = [v for metrics in results["test"].values() for v in metrics.values()]
    assert values and all(np.isfinite(values))

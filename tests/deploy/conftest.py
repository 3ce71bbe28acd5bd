"""Shared fixtures of the deployment tests: one tiny trained run of the default experiment
(DANTEStocks, 200 tweets, 2 steps) and its exported model, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EXPERIMENT = ROOT / "experiments" / "dante_pos_emotions_pcgrad.py"
DANTE_SLICE = {"limit": 200}
TINY_SETS = {
    "dataset_options": DANTE_SLICE, "steps": 2, "batch_size": 16, "eval_batch_size": 32,
    "log_every": 1, "eval_every": 0, "checkpoint.every": 2,
}  # fmt: skip


def tiny_train_args(workdir: Path, config: Path = DEFAULT_EXPERIMENT, **sets) -> list[str]:
    args = ["train", "--config", str(config), "--workdir", str(workdir), "--quiet"]
    for key, value in {**TINY_SETS, **sets}.items():
        args += ["--set", f"{key}={value!r}"]
    return args


@pytest.fixture(scope="session")
def dante_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-step run of the default experiment on 200 tweets."""
    from mtl_jax.cli.main import main  # noqa: PLC0415

    run_dir = tmp_path_factory.mktemp("deploy") / "run"
    assert main(tiny_train_args(run_dir)) == 0
    return run_dir


@pytest.fixture(scope="session")
def dante_model(dante_run: Path) -> Path:
    """``mtl-jax export`` of :func:`dante_run` (best checkpoint)."""
    from mtl_jax.cli.deploy import main  # noqa: PLC0415

    out = dante_run.parent / "model"
    assert main(["export", "--workdir", str(dante_run), "--out", str(out)]) == 0
    return out

"""Shared pieces of the tuning tests: a tiny experiment file, the CLI in a subprocess, the study."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.tuning.fake_objective:objective"

TINY_CONFIG = {
    "dataset": "multi_mnist",
    "dataset_options": {"num_train": 300, "num_test": 64},
    "tasks": ["left", "right"],
    "model": {"trunk": "mlp", "hidden": 16, "num_layers": 1},
    "aggregator": "sum",
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
    "batch_size": 16,
    "eval_batch_size": 32,
    "steps": 3,
    "log_every": 1,
    "eval_every": 0,
    "best_metric": "mean/accuracy",
    "checkpoint": {"every": 1, "keep": 1},
    "gradient_stats": False,
}

TINY_SPACE = """{
        "optimizer.learning_rate": Float(1e-4, 1e-1, log=True),
        "model.dropout": Float(0.0, 0.3),
        "aggregator": Choice(["sum", "pcgrad", "cagrad"], when={"cagrad": {"aggregator_options.c": Float(0.1, 0.9)}}),
    }"""


def write_experiment(folder: Path, space: str | None = TINY_SPACE, config: dict | None = None, name: str = "tiny") -> Path:
    """An experiment file with get_config() (the tiny MultiMNIST config) and get_sweep()."""
    text = "from mtl_jax.tuning.space import Choice, Float, Int\n\n\n"
    text += f"def get_config():\n    return {config or TINY_CONFIG!r}\n"
    if space is not None:
        text += f"\n\ndef get_sweep():\n    return {textwrap.dedent(space).strip()}\n"
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mtl_jax.cli.tune", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def load_study(url: str, name: str) -> Any:
    import optuna  # noqa: PLC0415

    return optuna.load_study(study_name=name, storage=url)

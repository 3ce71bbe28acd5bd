"""A short run on real MultiMNIST lowers every task's loss; the CLI rejects bad input with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_jax.cli.main import main
from mtl_jax.config import apply_overrides, load_config
from mtl_jax.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "multi_mnist_pcgrad.py"
SMALL = [
    "dataset_options.num_train=3000", "dataset_options.num_test=1000",
    "model.hidden=[128, 128]", "steps=150", "batch_size=64", "log_every=50",
]


@pytest.mark.slow
@pytest.mark.parametrize("aggregator, mode", [("pcgrad", "full"), ("pcgrad", "representation"), ("sum", "full")])
def test_short_real_run_lowers_every_task_loss(aggregator, mode):
    config = apply_overrides(load_config(CONFIG), SMALL + [f"aggregator={aggregator!r}", f"mode={mode!r}"])
    results = train(config, progress=False)
    for task, metrics in results["test"].items():
        assert metrics["loss"] < 0.5 * results["first_train_loss"][task], (task, results)
        assert metrics["accuracy"] > 0.6, (task, results)  # chance is 0.1


def test_cli_json_output_has_a_result_per_task(capsys):
    code = main(["train", "--config", str(CONFIG), "--json", *(x for s in SMALL[:3] + ["steps=5"] for x in ("--set", s))])
    assert code == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(results["test"]) == {"left", "right"}
    assert results["config"]["steps"] == 5


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["aggregator='pcgard'"], "accepted values: .*pcgrad"),
        (["mode='layer'"], "accepted values: full, representation"),
        (["dataset='mnist3'"], "accepted values: multi_mnist"),
        (["optimizer.name='adamax'"], "accepted values: adam, adamw, sgd"),
        (["optimizer.learnig_rate=0.1"], "did you mean 'optimizer.learning_rate'"),
        (["stpes=10"], "did you mean 'steps'"),
        (["steps=-3"], "'steps' must be a positive integer"),
        (["steps='many'"], "expected a value of type int"),
        (["batch_size"], "expected key=value"),
    ],
)
def test_bad_config_is_one_clear_line_and_exit_code_2(capsys, overrides, message):
    code = main(["train", "--config", str(CONFIG), *(x for s in overrides for x in ("--set", s))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mtl-jax: error: ") and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


def test_missing_config_file_exit_code_2(capsys, tmp_path):
    assert main(["train", "--config", str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_batch_not_divisible_by_devices_fails_before_compiling():
    script = (
        "import os; os.environ['XLA_FLAGS']='--xla_force_host_platform_device_count=4';"
        "import sys; from mtl_jax.cli.main import main;"
        f"sys.exit(main(['train','--config',{str(CONFIG)!r},'--set','batch_size=66']))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "not divisible by the 4 devices" in done.stderr
    assert "64" in done.stderr and "68" in done.stderr.replace("multiple of 4", "")


def test_help_lists_train_with_examples():
    done = subprocess.run([sys.executable, "-m", "mtl_jax.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "train" in done.stdout and "examples:" in done.stdout

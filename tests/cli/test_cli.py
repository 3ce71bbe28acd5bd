"""The mtl-jax command: help, JSON-lines mode, logs, run-directory safety, eval and Δm%."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mtl_jax.cli.main import main
from tests.training.small_run import train_args


def test_help_lists_every_command_with_examples():
    done = subprocess.run([sys.executable, "-m", "mtl_jax.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for word in ("train", "eval", "methods", "examples:", "mtl-jax eval --workdir"):
        assert word in done.stdout


@pytest.mark.slow
def test_train_json_logs_eval_refusal_overwrite_and_delta_m(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(run, "--json", eval_every=8)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    final = lines[-1]
    assert set(final["test"]) == {"left", "right"} and final["step"] == 12
    assert {"accuracy", "macro_f1", "loss"} <= set(final["test"]["left"])
    train_records = [r for r in lines[:-1] if r.get("split") == "train"]
    assert [r["step"] for r in train_records] == [1, 4, 8, 12]
    for key in ("loss/left", "grad_norm/right", "grad_cosine/left~right", "conflict_fraction",
                "learning_rate", "examples_per_second", "skipped_updates", "weight/left"):
        assert key in train_records[-1], key
    assert [r["step"] for r in lines if r.get("split") == "validation"] == [8, 12]
    assert final["best"]["step"] in (8, 12)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == lines[:-1]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((run / "config.json").read_text())
    assert saved == final["config"] and saved["checkpoint"] == {"every": 4, "keep": 2}

    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(train_args(run, steps=20, eval_every=8)) == 2
    assert "different config (differs at steps)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    assert main(["eval", "--workdir", str(run), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["step"] == final["best"]["step"]
    if evaluated["step"] == final["step"]:
        assert evaluated["test"] == final["test"]

    other = tmp_path / "other"
    args = train_args(other, "--json", "--set", f"baselines={{'left': {str(run)!r}}}", aggregator="sum")
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    base, mine = final["test"]["left"], second["test"]["left"]
    want = 100 * (-(mine["accuracy"] - base["accuracy"]) / base["accuracy"] - (mine["macro_f1"] - base["macro_f1"]) / base["macro_f1"]) / 2
    assert second["delta_m"] == pytest.approx(want, rel=1e-9)

    assert main(train_args(run, "--overwrite", steps=4)) == 0
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    assert json.loads((run / "results.json").read_text())["step"] == 4

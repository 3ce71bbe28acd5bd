"""A stand-in objective for the sweep machinery tests: no JAX, no data.

It draws the trial's config exactly as the real objective does, writes an ordinary-looking
run directory (``config.json``, then ``results.json``) and reports two intermediate values.
``<sweep dir>/preempt-once`` makes one trial stop as if preempted (SIGTERM), ``fail-once``
makes one fail (each file is removed when used). The value is a smooth function of the
drawn learning rate and dropout.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from mtl_jax.tuning.objective import trial_config
from mtl_jax.tuning.study import Preempted


def value_of(config: Mapping[str, Any]) -> float:
    learning_rate = config["optimizer"]["learning_rate"]
    return -((math.log10(learning_rate) + 2.5) ** 2) - config["model"]["dropout"]


RENDEZVOUS = "MTL_JAX_TEST_RENDEZVOUS"  # a directory: each trial waits until two workers have one


def wait_for_a_second_worker(directory: Path, timeout: float = 90.0) -> None:
    """Every trial waits (bounded) until trials of two worker processes are running, so that a
    test can check both workers took trials however slowly the second one starts."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(directory.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def objective(trial: Any, config: Mapping[str, Any], space: Mapping[str, Any], run_dir: str) -> float:
    if os.environ.get(RENDEZVOUS):
        wait_for_a_second_worker(Path(os.environ[RENDEZVOUS]))
    run = Path(run_dir)
    run_config = trial_config(trial, config, space)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(run_config), encoding="utf-8")
    with open(run / "attempts.txt", "a", encoding="utf-8") as attempts:
        attempts.write(f"{trial.number}\n")
    sweep_dir = run.parent.parent
    for flag, error in (("preempt-once", Preempted), ("fail-once", ValueError)):
        if (sweep_dir / flag).exists():
            (sweep_dir / flag).unlink()
            raise error(f"{flag} in trial {trial.number}")
    value = value_of(run_config)
    for step in (1, 2):
        trial.report(value - (2 - step), step)
    (run / "results.json").write_text(json.dumps({"best": {"value": value}}), encoding="utf-8")
    return value

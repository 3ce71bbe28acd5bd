"""A sweep worker process: claims waiting trials of the study and runs them until none is left.

    python -m mtl_jax.tuning.worker SPEC.json

SPEC holds the storage URL, the study name, the number of trials asked for, the heartbeat, the sampler and pruner names, a
sampler seed, the sweep directory (trial run directories go under ``trials/``) and the
objective (``module:function``; the trainer's by default). The space and the base config
come from the study itself, so every worker, on any machine, runs the same sweep.

Loop: fail stale trials (their retries become waiting trials), claim one waiting trial,
run it under a heartbeat thread, tell the study its value (complete), that it was pruned,
or that it failed (with the error, one line, as the ``error`` user attribute); when no
trial is waiting (or N are finished or running) but some are still running elsewhere, wait
for them (they may go stale and come back as retries); stop when N trials are finished, or
none is waiting or running.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from mtl_jax.tuning import study as study_lib
from mtl_jax.tuning.study import Preempted
from mtl_jax.tuning.space import from_description
from mtl_jax.tuning.storage import open_storage

DEFAULT_OBJECTIVE = "mtl_jax.tuning.objective:train_trial"


class Heartbeat:
    """Records the trial's heartbeat now and every ``interval`` seconds while the block runs."""

    def __init__(self, storage: Any, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error: the next beat tries again
                pass

    def __enter__(self) -> "Heartbeat":
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def make_sampler(name: str, seed: int, space: Mapping[str, Any]) -> Any:
    import optuna  # noqa: PLC0415

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":  # the waiting trials already carry their grid points (study.top_up)
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, config: Mapping[str, Any]) -> Any:
    """median: MedianPruner (prune below the median of earlier trials at the same step, after
    2 finished trials); hyperband: HyperbandPruner over [eval_every, steps]; none."""
    import optuna  # noqa: PLC0415

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(int(config.get("eval_every") or 1), 1), max_resource=int(config["steps"]))
    return optuna.pruners.NopPruner()


def load_objective(name: str) -> Callable[..., float]:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]


def retry_later(study: Any, failed: Any) -> None:
    """Enqueue a retry of ``failed`` (same parameters, same run directory), as the heartbeat
    does for a killed worker's trial."""
    storage = study._storage  # noqa: SLF001
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None) or storage.get_failed_trial_callback  # Optuna 5 / 4
    callback = getter()
    if callback is not None:
        callback(study, failed)


def run_trial(study: Any, trial_id: int, objective: Callable[..., float], sweep_dir: Path, heartbeat: float) -> str:
    """Run one claimed trial to its end; the state it ended in."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    space = from_description(study.user_attrs[study_lib.SPACE_ATTR])
    config = study.user_attrs[study_lib.CONFIG_ATTR]
    with Heartbeat(study._storage, trial_id, heartbeat):  # noqa: SLF001
        trial = optuna.Trial(study, trial_id)
        run_dir = trial.user_attrs.get(study_lib.RUN_DIR_ATTR) or str(sweep_dir / "trials" / f"{trial.number:04d}")
        trial.set_user_attr(study_lib.RUN_DIR_ATTR, run_dir)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            value = objective(trial, config, space, run_dir)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return "pruned"
        except Preempted:
            frozen = study.tell(trial, state=TrialState.FAIL)
            retry_later(study, frozen)
            return "preempted"
        except Exception as error:  # the objective failed: recorded, counted, not retried
            trial.set_user_attr(study_lib.ERROR_ATTR, one_line(error))
            study.tell(trial, state=TrialState.FAIL)
            print(f"mtl-jax sweep: trial {trial.number} failed: {one_line(error)}", file=sys.stderr, flush=True)
            return "fail"
        study.tell(trial, float(value))
        return "complete"


def work(spec: Mapping[str, Any]) -> int:
    """The worker loop (module docstring); the number of trials this worker ran."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec["storage"], spec["heartbeat"])
    probe = optuna.load_study(study_name=spec["study"], storage=storage)
    space = from_description(probe.user_attrs[study_lib.SPACE_ATTR])
    config = probe.user_attrs[study_lib.CONFIG_ATTR]
    study = optuna.load_study(
        study_name=spec["study"], storage=storage,
        sampler=make_sampler(spec["sampler"], int(spec["seed"]), space),
        pruner=make_pruner(spec["pruner"], config),
    )
    objective = load_objective(spec.get("objective") or DEFAULT_OBJECTIVE)
    sweep_dir = Path(spec["sweep_dir"])
    ran = 0
    wanted = int(spec.get("trials") or sys.maxsize)
    while True:
        study_lib.fail_stale(study)
        if study_lib.finished_count(study) >= wanted:
            return ran
        # never more than N finished or running trials: extra waiting ones stay queued
        trial_id = study_lib.claim_waiting(study) if study_lib.filled(study) < wanted else None
        if trial_id is None:
            if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                time.sleep(min(float(spec["heartbeat"]), 2.0))
                continue
            return ran
        ran += 1
        if run_trial(study, trial_id, objective, sweep_dir, float(spec["heartbeat"])) == "preempted":
            return ran


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    work(spec)
    return 0


if __name__ == "__main__":
    from mtl_jax.tuning import worker  # the module itself, not __main__: one Preempted class

    sys.exit(worker.main())

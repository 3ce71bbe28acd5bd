"""``mtl-jax sweep``: an Optuna study over an experiment's search space, run by K worker processes.

Order of work (bad input is refused before any study, file or folder is made):

1. ``--trials`` and ``--workers`` are positive; the config is loaded and resolved with
   ``--set``; the objective must be read on a split other than the test split;
2. the space (``get_sweep()`` or :mod:`~mtl_jax.tuning.default_space`) is checked against
   the config (:func:`mtl_jax.tuning.runs.checked_space`); a grid must be discrete and
   hold at least ``--trials`` points;
3. the storage URL is checked, and the database reached;
4. the study is opened (an existing one must have the same space, base config and
   direction) or created, and topped up to N trial slots (:mod:`~mtl_jax.tuning.study`);
5. the dataset is prepared once; K workers (:mod:`~mtl_jax.tuning.worker`) claim and run
   the waiting trials; the command waits for them (SIGTERM and Ctrl-C are passed on);
   (with ``--sampler grid``, the waiting trials carry the grid's points, in order);
6. the best-trial table, ``best_config.py`` and the PNG plots are written to the sweep
   directory (default ``runs/sweep-<study>``; trial run directories in ``trials/``).

Exit status: 0 when the study holds N finished trials, 1 when some are left (run the same
command again to continue), 2 for bad input.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from mtl_jax.errors import ConfigError
from mtl_jax.tuning import outputs, runs
from mtl_jax.tuning import study as study_lib
from mtl_jax.tuning.space import describe, from_description, grid, grid_size
from mtl_jax.tuning.storage import DEFAULT_HEARTBEAT, check_reachable, check_url, default_url, open_storage, shown

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")


@dataclasses.dataclass(frozen=True)
class SweepRequest:
    """The ``mtl-jax sweep`` arguments."""

    config: str
    trials: int
    workers: int = 1
    storage: str | None = None
    study: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    sets: tuple[str, ...] = ()
    workdir: str | None = None
    heartbeat: int = DEFAULT_HEARTBEAT
    objective: str | None = None  # module:function; the trainer's by default (tests pass a fake one)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked request: everything the study and the workers need."""

    request: SweepRequest
    config: dict
    space: dict
    described: dict
    study_name: str
    sweep_dir: Path
    url: str
    direction: str


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def plan(request: SweepRequest) -> Plan:
    """Steps 1–3 of the module docstring; writes nothing."""
    _positive("--trials", request.trials)
    _positive("--workers", request.workers)
    _positive("--heartbeat", request.heartbeat)
    if request.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {request.sampler!r} is unknown; accepted values: {', '.join(SAMPLERS)}")
    if request.pruner not in PRUNERS:
        raise ConfigError(f"--pruner {request.pruner!r} is unknown; accepted values: {', '.join(PRUNERS)}")
    config = runs.resolved_config(request.config, request.sets)
    runs.check_run_config(config)
    runs.check_objective(config)
    space = runs.checked_space(runs.declared_space(request.config), config)
    described = describe(space)
    space = from_description(described)  # what the workers will rebuild
    if request.sampler == "grid" and request.trials > grid_size(space):
        raise ConfigError(
            f"--trials {request.trials} is more than the {grid_size(space)} points of the grid; pass --trials {grid_size(space)}"
        )
    study_name = request.study or Path(request.config).stem
    sweep_dir = Path(request.workdir or Path("runs") / f"sweep-{study_name}").resolve()
    url = request.storage or default_url(sweep_dir)
    check_url(url)
    check_reachable(url)
    direction = "maximize" if runs.higher_is_better(config) else "minimize"
    return Plan(request, config, space, described, study_name, sweep_dir, url, direction)


def start_workers(p: Plan, seed_offset: int, lazy_here: bool = False) -> list[subprocess.Popen]:
    folder = p.sweep_dir / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    processes = []
    for index in range(p.request.workers):
        spec = {
            "storage": p.url, "study": p.study_name, "trials": p.request.trials, "heartbeat": p.request.heartbeat,
            "sampler": p.request.sampler, "pruner": p.request.pruner,
            "seed": int(p.config["seed"]) + 1000 * index + seed_offset,
            "sweep_dir": str(p.sweep_dir), "objective": p.request.objective,
        }
        path = folder / f"worker-{index}.json"
        path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        log = open(folder / f"worker-{index}.log", "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "mtl_jax.tuning.worker", str(path)],
            stdout=log, stderr=subprocess.STDOUT, env=runs.children_env(lazy_here, p.request.workers),
        ))
        log.close()
    return processes


def wait_for(processes: list[subprocess.Popen]) -> list[int]:
    """Exit codes of ``processes``; SIGTERM / SIGINT received meanwhile go on to them."""

    def forward(signum: int, frame: Any) -> None:
        del frame
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return [process.wait() for process in processes]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def summary_line(p: Plan, tally: dict[str, int]) -> str:
    states = ", ".join(f"{tally.get(s, 0)} {s}" for s in ("complete", "pruned", "fail", "running", "waiting") if tally.get(s))
    return f"study {p.study_name!r} in {shown(p.url)}: {tally['counted']} of {p.request.trials} trial slots filled ({states or 'none'})"


def report(p: Plan, study: Any, echo: Callable[[str], None]) -> None:
    """The table, the best config and the plots (step 6)."""
    echo(outputs.best_trials_table(study, p.space, p.config["best_metric"]))
    best = outputs.write_best_config(p.sweep_dir / "best_config.py", study, p.config, p.space, p.request.config)
    if best is not None:
        echo(f"best config: {best}  (mtl-jax train --config {best})")
        (p.sweep_dir / "best_trials.md").write_text(
            outputs.best_trials_table(study, p.space, p.config["best_metric"], k=20) + "\n", encoding="utf-8"
        )
    written, notes = outputs.write_plots(study, p.sweep_dir / "plots")
    if written:
        echo("plots: " + ", ".join(str(path) for path in written))
    for note in notes:
        echo(f"plot {note}")


def grid_points(space: dict) -> list[dict]:
    """Every point of a flat, discrete space, in order (the grid sampler's trials)."""
    axes = grid(space)
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def finished(study: Any, trials: int) -> bool:
    return study_lib.finished_count(study) >= trials


def run_sweep(request: SweepRequest, echo: Callable[[str], None] = print) -> int:
    """The whole command (module docstring); its exit status."""
    import optuna  # noqa: PLC0415

    lazy_here = runs.parent_process_allocates_lazily()  # the workers train; this process only checks
    p = plan(request)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(p.url, p.request.heartbeat)
    study = study_lib.open_or_create(storage, p.study_name, p.described, p.config, p.direction)
    existing = len(study.get_trials(deepcopy=False))
    added = study_lib.top_up(study, p.request.trials, grid_points(p.space) if p.request.sampler == "grid" else None)
    echo(f"study {p.study_name!r}: {existing} trials stored, {added} added; {p.request.workers} worker(s); runs in {p.sweep_dir / 'trials'}")
    if not finished(study, p.request.trials):
        if p.request.objective is None:  # the trainer's objective: prepare the data once, here
            runs.prepare_data(p.config)
        codes = wait_for(start_workers(p, seed_offset=existing, lazy_here=lazy_here))
        for index, code in enumerate(codes):
            if code != 0:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                echo(f"worker {index} ended by {how} (log: {p.sweep_dir / 'workers' / f'worker-{index}.log'});"
                     " its running trial is failed by the heartbeat and retried")
    tally = study_lib.tally(study)
    echo(summary_line(p, tally))
    for trial in study.get_trials(deepcopy=False):
        if study_lib.ERROR_ATTR in trial.user_attrs:
            echo(f"trial {trial.number} failed: {trial.user_attrs[study_lib.ERROR_ATTR]}")
    report(p, study, echo)
    if not finished(study, p.request.trials):
        echo("the study is not finished; run the same command again to continue it")
        return 1
    return 0

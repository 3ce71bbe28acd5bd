"""``mtl-jax sweep`` and ``mtl-jax compare``: the tuning commands.

``add_commands(subparsers)`` adds both to the ``mtl-jax`` parser; each sets ``handler`` on
its namespace (``args.handler(args) -> exit code``). ``python -m mtl_jax.cli.tune sweep ...``
runs them alone. Bad input is one line on stderr and exit code 2, before anything is
written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mtl_jax.errors import ConfigError

SWEEP_EXAMPLES = """examples:
  mtl-jax sweep --config experiments/dante_pos_emotions_pcgrad.py --trials 20
  mtl-jax sweep --config experiments/dante_pos_emotions_pcgrad.py --trials 20 --workers 2 --set steps=200
  mtl-jax sweep --config experiments/dante_pos_emotions_pcgrad.py --trials 100 --workers 4 \\
      --storage postgresql://user:password@db-host:5432/sweeps --study dante   # on every machine
"""
COMPARE_EXAMPLES = """examples:
  mtl-jax compare --config experiments/dante_pos_emotions_pcgrad.py --methods sum pcgrad mgda cagrad --seeds 3
  mtl-jax compare --config experiments/multi_mnist_pcgrad.py --methods pcgrad upgrad:representation --seeds 2 --workers 2
"""


def _missing_extra(error: ModuleNotFoundError) -> ConfigError:
    return ConfigError(f"this command needs {error.name}; install the tune extra: pip install -e '.[tune]'")


def sweep_command(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401, PLC0415
    except ModuleNotFoundError as error:
        raise _missing_extra(error) from error
    from mtl_jax.tuning.sweep import SweepRequest, run_sweep  # noqa: PLC0415

    request = SweepRequest(
        config=args.config, trials=args.trials, workers=args.workers, storage=args.storage, study=args.study,
        sampler=args.sampler, pruner=args.pruner, sets=tuple(args.set), workdir=args.workdir,
        heartbeat=args.heartbeat, objective=args.objective,
    )
    return run_sweep(request)


def compare_command(args: argparse.Namespace) -> int:
    from mtl_jax.tuning.compare import CompareRequest, run_compare  # noqa: PLC0415

    request = CompareRequest(
        config=args.config, methods=tuple(args.methods), seeds=args.seeds, workers=args.workers,
        sets=tuple(args.set), workdir=args.workdir, baselines_dir=args.baselines_dir,
    )
    return run_compare(request)


def add_commands(subparsers: Any) -> None:
    """Add ``sweep`` and ``compare`` to an argparse subparsers object."""
    formatter = argparse.RawDescriptionHelpFormatter
    sweep = subparsers.add_parser(
        "sweep", help="tune hyper-parameters and structure with an Optuna study (SQLite or PostgreSQL)",
        epilog=SWEEP_EXAMPLES, formatter_class=formatter,
    )
    sweep.add_argument("--config", required=True, help="experiments/<name>.py; its get_sweep() is the space (else the default space)")
    sweep.add_argument("--trials", type=int, required=True, help="trials the study should hold (a rerun continues up to this)")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    sweep.add_argument("--storage", help="sqlite:///file.db (default: <workdir>/study.db) or postgresql://user:pw@host:port/db")
    sweep.add_argument("--study", help="study name (default: the config file's name)")
    sweep.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    sweep.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the base config (repeatable)")
    sweep.add_argument("--workdir", help="sweep directory: trial runs, table, best config, plots (default: runs/sweep-<study>)")
    sweep.add_argument("--heartbeat", type=int, default=10,
                       help="seconds between trial heartbeats; a trial silent for 3x this is failed and retried (default 10)")
    sweep.add_argument("--objective", help=argparse.SUPPRESS)  # module:function, for tests of the machinery
    sweep.set_defaults(handler=sweep_command)
    compare = subparsers.add_parser(
        "compare", help="single-task baselines, then methods x seeds: per-task metrics, Δm%% with 95%% t intervals, ranks",
        epilog=COMPARE_EXAMPLES, formatter_class=formatter,
    )
    compare.add_argument("--config", required=True, help="experiments/<name>.py")
    compare.add_argument("--methods", nargs="+", required=True, metavar="METHOD[:MODE]",
                         help="aggregators to compare, e.g. sum pcgrad mgda cagrad (optionally name:mode)")
    compare.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 per method (default 3)")
    compare.add_argument("--workers", type=int, default=1, help="runs trained in parallel processes (default 1: in this one)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the config (repeatable)")
    compare.add_argument("--workdir", help="method runs and the table (default: runs/compare-<config name>)")
    compare.add_argument("--baselines-dir", default="runs/baselines",
                         help="single-task runs, cached and reused across compares (default: runs/baselines)")
    compare.set_defaults(handler=compare_command)


def main(argv: list[str] | None = None) -> int:
    """``python -m mtl_jax.cli.tune ...`` is ``mtl-jax ...``: the same parser, errors and exit codes."""
    from mtl_jax.cli.main import main as mtl_jax  # noqa: PLC0415 - cli.main imports this module

    return mtl_jax(argv)


if __name__ == "__main__":
    sys.exit(main())

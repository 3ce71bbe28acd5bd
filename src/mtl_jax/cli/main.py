"""The ``mtl-jax`` command line: ``train``, ``eval``, ``methods``; ``export``, ``predict``,
``serve`` (:mod:`mtl_jax.cli.deploy`); ``sweep``, ``compare`` (:mod:`mtl_jax.cli.tune`);
``report`` (:mod:`mtl_jax.cli.report`).

Exit codes: 0 done (also after a SIGTERM that saved a checkpoint), 1 a task loss became
non-finite with ``nonfinite="stop"``, 2 bad input (config, data, checkpoint, run directory)
reported as one line before anything compiles or is written (also an environment fault:
a read-only or full disk, a missing permission, a lost peer process), 130 Ctrl-C (during training:
after saving a checkpoint, like SIGTERM).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import errno
import os

from mtl_jax.aggregators import REGISTRY
from mtl_jax.cli import deploy, report, supervise, tune
from mtl_jax.config import apply_overrides, load_config
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.parallel import BatchShapeError

EXAMPLES = """examples:
  mtl-jax train --config experiments/dante_pos_emotions_pcgrad.py   # the default NLP experiment
  mtl-jax train --config experiments/multi_mnist_pcgrad.py
  mtl-jax train --config experiments/multi_mnist_pcgrad.py --set aggregator=sum --set steps=200
  mtl-jax train --config experiments/multi_mnist_pcgrad.py --workdir runs/mm --json > log.jsonl
  mtl-jax train --config experiments/multi_mnist_pcgrad.py --workdir runs/mm   # again: resumes
  mtl-jax eval --workdir runs/mm --split test
  mtl-jax methods
  mtl-jax export --workdir runs/mm --out models/mm && mtl-jax predict --model models/mm --input x.npz
  mtl-jax sweep --config experiments/dante_pos_emotions_pcgrad.py --trials 20 --workers 2
  mtl-jax compare --config experiments/multi_mnist_pcgrad.py --methods sum pcgrad mgda --seeds 3
  mtl-jax report runs/mm --out reports/mm
  # two machines: the same command on each, with --process-id 0 and 1
  mtl-jax train --config C --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0
"""


STOPPED_BY = {"preempted": "SIGTERM", "interrupted": "Ctrl-C"}
INTERRUPTED = 130  # the shell's code for SIGINT


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="mtl-jax", description="Multi-task training with gradient surgery in JAX.",
        epilog=EXAMPLES, formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,methods,export,predict,serve,sweep,compare,report}")
    train = commands.add_parser("train", help="train (or resume) a multi-task model from a config file",
                                epilog=EXAMPLES, formatter_class=formatter)
    train.add_argument("--config", required=True, help="experiments/<name>.py defining get_config()")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config entry (dotted keys, Python literals), repeatable")
    train.add_argument("--workdir", help="run directory (default: runs/<config name>-<config hash>); an"
                       " existing run with the same config is resumed, one with another config refused")
    train.add_argument("--overwrite", action="store_true", help="delete an existing run directory and start afresh")
    train.add_argument("--json", action="store_true", help="JSON-lines log on stdout (metrics, then the results), no bar")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--init-from", metavar="RUN|DIR", help="fine-tune: start from the parameters of a trained run"
                       " or an exported model (leaves it lacks, e.g. a new task's head, start fresh); the"
                       " lineage is saved in the run directory and carried into exports")
    train.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: address of process 0's coordinator"
                       " (jax.distributed); without it a cluster environment (SLURM, Open MPI, Cloud TPU,"
                       " JAX_COORDINATOR_ADDRESS) is detected by JAX")
    train.add_argument("--num-processes", type=int, metavar="N", help="multi-host: number of processes")
    train.add_argument("--process-id", type=int, metavar="I", help="multi-host: this process's index, 0..N-1")
    train.add_argument("--heartbeat-timeout", type=int, default=20, metavar="S",  # parallel.DEFAULT_HEARTBEAT_SECONDS
                       help="multi-host: seconds without a process's heartbeat before the others stop with"
                       " one line (default 20)")
    evaluate = commands.add_parser("eval", help="evaluate a trained run on a split",
                                   epilog=EXAMPLES, formatter_class=formatter)
    evaluate.add_argument("--workdir", required=True, help="run directory made by `mtl-jax train`")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                          help="which checkpoint: the best by the validation metric (default) or the latest")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON line")
    commands.add_parser("methods", help="list the aggregation methods", epilog=EXAMPLES, formatter_class=formatter)
    for module in (deploy, tune, report):
        module.add_commands(commands)
    return parser


def results_table(test: dict[str, dict[str, float]], first_loss: dict[str, float] | None = None) -> str:
    """A per-task table of the scalar metrics (per-label F1 left to the JSON files)."""
    metrics = sorted({name for named in test.values() for name in named if "/" not in name})
    header = ["task", *metrics] + (["first train loss"] if first_loss else [])
    rows = [header]
    for task, named in test.items():
        cells = [f"{named[m]:.4f}" if m in named else "-" for m in metrics]
        rows.append([task, *cells] + ([f"{first_loss[task]:.4f}"] if first_loss else []))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def default_workdir(config_path: str, config: dict, init_from: str | None = None) -> str:
    """``runs/<config name>-<hash of the resolved config>``: the same command resumes its run,
    a changed ``--set`` starts a new one; a fine-tuning run (``--init-from``) gets its own."""
    from mtl_jax.config.run_config import hashed_form  # noqa: PLC0415

    digest = hashlib.sha1(json.dumps(hashed_form(config), sort_keys=True).encode()).hexdigest()[:8]
    if init_from is not None:
        digest += "-ft" + hashlib.sha1(str(Path(init_from).resolve()).encode()).hexdigest()[:6]
    return str(Path("runs") / f"{Path(config_path).stem}-{digest}")


def fine_tuning_builder(init_from: str | None) -> tuple[dict, list]:
    """({"build_model": builder} for Experiment.from_config, [lineage]) for ``--init-from``:
    the usual model, then the source's parameters wherever names and shapes match."""
    if init_from is None:
        return {}, []
    from mtl_jax.deploy.lineage import load_init_params  # noqa: PLC0415
    from mtl_jax.training.experiment import build_model  # noqa: PLC0415

    lineage: list = []

    def build(model_config, spec, task_names, seed):
        model, params = build_model(model_config, spec, task_names, seed)
        params, entry = load_init_params(init_from, params)
        lineage.append(entry)
        return model, params

    return {"build_model": build}, lineage


def _train(args: argparse.Namespace) -> int:
    from mtl_jax.config import RunConfig, resolve  # noqa: PLC0415 - imports JAX: keep `--help` fast
    from mtl_jax.training.experiment import Experiment  # noqa: PLC0415
    from mtl_jax.training.loop import train  # noqa: PLC0415
    from mtl_jax.parallel import initialize_distributed  # noqa: PLC0415

    initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                           heartbeat_timeout_seconds=args.heartbeat_timeout)
    config = RunConfig.from_dict(apply_overrides(resolve(load_config(args.config)), args.set))
    resolved = config.to_dict()
    workdir = args.workdir or default_workdir(args.config, resolved, args.init_from)
    builder, lineage = fine_tuning_builder(args.init_from)
    experiment = Experiment.from_config(config, **builder)
    results = train(experiment, workdir=workdir, overwrite=args.overwrite,
                    progress=not (args.quiet or args.json), json_log=args.json)
    if lineage:
        from mtl_jax.deploy.lineage import save_lineage  # noqa: PLC0415

        save_lineage(workdir, lineage[0])
    if args.json:
        print(json.dumps({"config": resolved, **results}))
    elif results["preempted"]:
        reason = STOPPED_BY.get(results.get("stopped"), results.get("stopped"))
        print(f"mtl-jax: stopped by {reason} at step {results['step']}; checkpoint saved in {workdir}."
              " Run the same command to resume.")
    else:
        print(f"\n{Path(args.config).stem}: {config.aggregator} ({config.mode}) on {results['devices']},"
              f" {results['train_seconds']:.1f} s, {results['examples_per_second']:.0f} examples/s, run dir {workdir}")
        print(f"{config.test_split} split, step {results['step']}:")
        print(results_table(results["test"], results["first_train_loss"]))
        if "delta_m" in results:
            print(f"Δm% vs baselines: {results['delta_m']:+.2f} (negative = better)")
    return INTERRUPTED if results.get("stopped") == "interrupted" else 0


def _eval(args: argparse.Namespace) -> int:
    from mtl_jax.training.loop import evaluate_run  # noqa: PLC0415

    results = evaluate_run(args.workdir, args.split, args.checkpoint)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{args.workdir}: {args.split} split, checkpoint of step {results['step']}")
        print(results_table(results["test"]))
        if "delta_m" in results:
            print(f"Δm% vs baselines: {results['delta_m']:+.2f} (negative = better)")
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a corrupt checkpoint skipped) as one line on stderr."""
    del category, filename, lineno, line
    print(f"mtl-jax: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train" and multi_process(args) and not supervise.is_supervised():
        return supervise.run_supervised(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from mtl_jax.training.hooks import NonFiniteLossError  # noqa: PLC0415

    try:
        if args.command == "methods":
            width = max(map(len, REGISTRY))
            for name, (_, description) in sorted(REGISTRY.items()):
                print(f"{name:{width}s}  {description}")
            return 0
        if args.command == "eval":
            return _eval(args)
        if args.command == "train":
            return _train(args)
        return args.handler(args)
    except KeyboardInterrupt:
        print("mtl-jax: interrupted (Ctrl-C); run the same command to resume from the last checkpoint", file=sys.stderr)
        return INTERRUPTED
    except (ConfigError, DataError, BatchShapeError) as error:
        print(f"mtl-jax: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"mtl-jax: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"mtl-jax: error: {environment_fault(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a lost peer of a multi-process job surfaces as XLA's RuntimeError
        if not lost_peer(error):
            raise
        print(f"mtl-jax: error: {lost_peer(error)}", file=sys.stderr)
        return 2


def multi_process(args: argparse.Namespace) -> bool:
    """Whether ``train`` joins a multi-process job (flags, or a cluster environment)."""
    from mtl_jax.parallel import cluster_environment  # noqa: PLC0415

    return args.coordinator is not None or cluster_environment()


FIXES = {
    errno.ENOSPC: "the disk is full; free space (or pass --workdir on another disk), then run the same command to resume",
    errno.EROFS: "the file system is read-only; pass a writable --workdir (or --out)",
    errno.EACCES: "permission denied; pass a directory you can write (--workdir / --out) or fix its permissions",
    errno.EPERM: "operation not permitted; pass a directory you own (--workdir / --out)",
    errno.EDQUOT: "the disk quota is exceeded; free space, then run the same command to resume",
}


def environment_fault(error: OSError) -> str:
    """One line naming an environment fault (disk, permissions) and its fix."""
    where = f" ({error.filename})" if error.filename else ""
    reason = os.strerror(error.errno) if error.errno else type(error).__name__
    fix = FIXES.get(error.errno, "check the path and the disk, then run the same command again")
    return f"{reason}{where}: {fix}"


PEER_SIGNS = ("heartbeat", "coordination service", "barrier timed out", "connection reset", "gloo", "unavailable:")


def lost_peer(error: RuntimeError) -> str | None:
    """One line for a multi-process job whose peer died, or None for any other RuntimeError."""
    text = str(error).lower()
    if not any(sign in text for sign in PEER_SIGNS):
        return None
    return ("another process of this multi-process job stopped or is unreachable; restart every process"
            " with the same command to resume from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())

"""The ``mtl-jax`` command line: ``train``, ``eval`` and ``methods``.

Exit codes: 0 done (also after a SIGTERM that saved a checkpoint), 1 a task loss became
non-finite with ``nonfinite="stop"``, 2 bad input (config, data, checkpoint, run directory)
reported as one line before anything compiles or is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from mtl_jax.aggregators import REGISTRY
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
"""


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="mtl-jax", description="Multi-task training with gradient surgery in JAX.",
        epilog=EXAMPLES, formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,methods}")
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
    evaluate = commands.add_parser("eval", help="evaluate a trained run on a split",
                                   epilog=EXAMPLES, formatter_class=formatter)
    evaluate.add_argument("--workdir", required=True, help="run directory made by `mtl-jax train`")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                          help="which checkpoint: the best by the validation metric (default) or the latest")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON line")
    commands.add_parser("methods", help="list the aggregation methods", epilog=EXAMPLES, formatter_class=formatter)
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


def default_workdir(config_path: str, config: dict) -> str:
    """``runs/<config name>-<hash of the resolved config>``: the same command resumes its run,
    a changed ``--set`` starts a new one."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return str(Path("runs") / f"{Path(config_path).stem}-{digest}")


def _train(args: argparse.Namespace) -> int:
    from mtl_jax.training.loop import train  # imports JAX: keep `--help` fast
    from mtl_jax.training.run_config import resolve

    config = apply_overrides(resolve(load_config(args.config)), args.set)
    workdir = args.workdir or default_workdir(args.config, config)
    results = train(config, workdir=workdir, overwrite=args.overwrite,
                    progress=not (args.quiet or args.json), json_log=args.json)
    if args.json:
        print(json.dumps({"config": config, **results}))
    elif results["preempted"]:
        print(f"mtl-jax: stopped by SIGTERM at step {results['step']}; checkpoint saved in {workdir}."
              " Run the same command to resume.")
    else:
        print(f"\n{Path(args.config).stem}: {config['aggregator']} ({config['mode']}) on {results['devices']},"
              f" {results['train_seconds']:.1f} s, {results['examples_per_second']:.0f} examples/s, run dir {workdir}")
        print(f"{config['test_split']} split, step {results['step']}:")
        print(results_table(results["test"], results["first_train_loss"]))
        if "delta_m" in results:
            print(f"Δm% vs baselines: {results['delta_m']:+.2f} (negative = better)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from mtl_jax.training.loop import evaluate_run

    results = evaluate_run(args.workdir, args.split, args.checkpoint)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{args.workdir}: {args.split} split, checkpoint of step {results['step']}")
        print(results_table(results["test"]))
        if "delta_m" in results:
            print(f"Δm% vs baselines: {results['delta_m']:+.2f} (negative = better)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mtl_jax.training.loop import NonFiniteLossError

    try:
        if args.command == "methods":
            width = max(map(len, REGISTRY))
            for name, (_, description) in sorted(REGISTRY.items()):
                print(f"{name:{width}s}  {description}")
            return 0
        if args.command == "eval":
            return _eval(args)
        return _train(args)
    except (ConfigError, DataError, BatchShapeError) as error:
        print(f"mtl-jax: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"mtl-jax: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``mtl-jax`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mtl_jax.aggregators import REGISTRY
from mtl_jax.config import ConfigError, apply_overrides, load_config
from mtl_jax.data.errors import DataError
from mtl_jax.training.mesh import BatchShapeError

EXAMPLES = """examples:
  mtl-jax train --config experiments/multi_mnist_pcgrad.py
  mtl-jax train --config experiments/multi_mnist_pcgrad.py --set aggregator=sum --set steps=200
  mtl-jax methods
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtl-jax", description="Multi-task training with gradient surgery in JAX.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a multi-task model from a config file",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", required=True, help="experiments/<name>.py defining get_config()")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config entry (dotted keys), repeatable")
    train.add_argument("--json", action="store_true", help="print the results as one JSON line, no progress bar")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    commands.add_parser("methods", help="list the aggregation methods")
    return parser


def _table(results: dict) -> str:
    metrics = sorted({name for named in results["test"].values() for name in named})
    rows = [["task", *metrics, "first train loss"]]
    for task, named in results["test"].items():
        rows.append([task, *(f"{named[m]:.4f}" for m in metrics), f"{results['first_train_loss'][task]:.4f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> int:
    from mtl_jax.training.loop import train  # imports JAX: keep `--help` fast

    config = apply_overrides(load_config(args.config), args.set)
    results = train(config, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps({"config": config, **results}))
    else:
        print(f"\n{Path(args.config).stem}: {config['aggregator']} ({config['mode']}) on {results['devices']},"
              f" {results['train_seconds']:.1f} s, {results['examples_per_second']:.0f} examples/s")
        print(_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "methods":
            for name, (_, description) in sorted(REGISTRY.items()):
                print(f"{name:12s} {description}")
            return 0
        return _train(args)
    except (ConfigError, DataError, BatchShapeError) as error:
        print(f"mtl-jax: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

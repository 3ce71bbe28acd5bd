"""``mtl-jax report RUN [RUN ...] --out DIR``: figures and a self-contained HTML page.

``add_commands(subparsers)`` adds the ``report`` sub-command to the ``mtl-jax`` parser; its
handler, :func:`report_command`, is stored as the parsed arguments' ``handler``. Bad input
(a directory that is not a run, an ``--out`` that is a file) raises ConfigError before
anything is written; the CLI turns it into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtl_jax.errors import ConfigError

EXAMPLES = """examples:
  mtl-jax report runs/mm --out reports/mm                          # one run
  mtl-jax report runs/mm-sum runs/mm-pcgrad runs/mm-mgda --out reports/cmp   # several: comparison
"""


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``report`` to an ``add_subparsers()`` object; returns its parser."""
    parser = subparsers.add_parser(
        "report", help="draw a run's (or several runs') curves and gradient-conflict statistics as HTML + PNG",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories made by `mtl-jax train`")
    parser.add_argument("--out", required=True, help="directory for report.html, the PNG figures and summary.json")
    parser.add_argument("--compare-only", action="store_true",
                        help="with several runs: the comparison and overlays only, no section per run")
    parser.set_defaults(handler=report_command)
    return parser


def check_out(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out!r} is a file; name a directory (it is created if missing)")
    return path


def report_command(args: argparse.Namespace) -> int:
    """Build the report; print where it is and its notes (one line each)."""
    out = check_out(args.out)
    try:
        import matplotlib  # noqa: F401, PLC0415 - keep `--help` fast
    except ImportError as error:
        raise ConfigError("`mtl-jax report` needs matplotlib; install it: pip install matplotlib") from error
    from mtl_jax.report import build_report  # noqa: PLC0415

    report = build_report(args.runs, out, per_run=not args.compare_only)
    for line in report.notes:
        print(f"note: {line}")
    print(f"report: {report.page} ({len(report.figures)} figures, {report.page.stat().st_size / 1e6:.2f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mtl_jax.cli.report ...`` is ``mtl-jax ...``: the same parser, errors and exit codes."""
    from mtl_jax.cli.main import main as mtl_jax  # noqa: PLC0415 - cli.main imports this module

    return mtl_jax(argv)


if __name__ == "__main__":
    sys.exit(main())

"""The deployment commands of ``mtl-jax``: ``export``, ``predict`` and ``serve``.

``add_commands(subparsers)`` adds the three sub-commands, each with ``handler`` set to its
function (``args.handler(args) -> exit code``). Bad input raises ConfigError / DataError,
which the entry point prints as one line with exit code 2. ``predict`` writes only JSON
lines to stdout (or ``--output``); progress and messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mtl_jax.errors import ConfigError, DataError

EXAMPLES = """examples:
  mtl-jax export --workdir runs/dante --out models/dante            # best checkpoint
  mtl-jax predict --model models/dante --text "PETR4 subindo forte hoje" --top-k 2
  mtl-jax predict --model models/dante --input tweets.jsonl --field text --tasks upos joy > out.jsonl
  mtl-jax serve --model models/dante --port 8000
"""


def add_commands(subparsers: Any) -> None:
    """Add ``export``, ``predict`` and ``serve`` to an ``argparse`` sub-parser set."""
    formatter = argparse.RawDescriptionHelpFormatter
    export = subparsers.add_parser("export", help="export a trained run as a self-contained model directory",
                                   epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    export.add_argument("--workdir", required=True, help="run directory made by `mtl-jax train`")
    export.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="the best checkpoint by the validation metric (default) or the latest")  # fmt: skip
    export.add_argument("--out", required=True, help="new (or empty) directory for the exported model")
    export.add_argument("--overwrite", action="store_true", help="replace an exported model already in --out")
    export.add_argument("--cpu-only", action="store_true", help="lower for the CPU only (default: CPU and CUDA)")
    export.set_defaults(handler=run_export)

    predict = subparsers.add_parser("predict", help="predict with an exported model; JSON lines on stdout",
                                    epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    predict.add_argument("--model", required=True, help="directory written by `mtl-jax export`")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", metavar="T", help="a text to predict on (repeatable)")
    source.add_argument("--input", metavar="FILE|-", help=".txt, .jsonl, .csv, .npz file, or - for stdin")
    predict.add_argument("--field", help=".jsonl: the field holding each input (a string or a list of tokens)")
    predict.add_argument("--column", help=".csv: the column holding the texts (default: text)")
    predict.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (default: all)")
    predict.add_argument("--output", help="write the JSON lines to this file instead of stdout")
    predict.add_argument("--batch-size", type=int, default=64, help="inputs per compiled call (default: 64)")
    predict.add_argument("--top-k", type=int, default=1, help="classification: the k most probable labels (default: 1)")
    predict.add_argument("--threshold", type=float, default=0.5, help="multilabel: probability threshold (default: 0.5)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(handler=run_predict)

    serve = subparsers.add_parser("serve", help="serve an exported model over HTTP (needs the serve extra)",
                                  epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    serve.add_argument("--model", required=True, help="directory written by `mtl-jax export`")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--max-batch", type=int, default=64, help="most inputs per shared compiled call (default: 64)")
    serve.add_argument("--window-ms", type=float, default=2.0,
                       help="how long to wait for requests being read before a call (default: 2)")  # fmt: skip
    serve.set_defaults(handler=run_serve)


def run_export(args: argparse.Namespace) -> int:
    from mtl_jax.deploy import artifact  # noqa: PLC0415 - imports JAX: keep --help fast
    from mtl_jax.deploy.export import export_run  # noqa: PLC0415
    from mtl_jax.deploy.source import open_run  # noqa: PLC0415

    artifact.check_out_dir(Path(args.out), args.overwrite)  # before any work
    run = open_run(args.workdir, args.checkpoint)
    platforms = ("cpu",) if args.cpu_only else artifact.PLATFORMS
    out = export_run(run, args.out, overwrite=args.overwrite, platforms=platforms)
    metadata = artifact.read_metadata(out)
    print(f"mtl-jax: exported {run.run_dir} ({run.checkpoint} checkpoint, step {run.step}) to {out}:"
          f" {len(metadata['tasks'])} tasks, {metadata['params']['count']:,} parameters,"
          f" lowered for {', '.join(metadata['platforms'])}", file=sys.stderr)  # fmt: skip
    return 0


def read_examples(args: argparse.Namespace, metadata: dict) -> list[Any]:
    from mtl_jax.deploy.inputs import read_inputs  # noqa: PLC0415

    kind = metadata["input"]["kind"]
    if args.text is not None:
        if kind != "text":
            raise ConfigError(f"--text: this model's input is {kind}; fix: pass --input with a .npz or .jsonl file")
        return list(args.text)
    return read_inputs(args.input, kind=kind, keys=list(metadata["input"]["keys"]), field=args.field, column=args.column)


def write_lines(lines: list[dict], output: str | None) -> None:
    """JSON lines to stdout, or atomically to ``output``."""
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"--output {output!r} is a directory; fix: name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def run_predict(args: argparse.Namespace) -> int:
    from mtl_jax.deploy.artifact import load_artifact  # noqa: PLC0415
    from mtl_jax.deploy.predict import Predictor, check_options  # noqa: PLC0415

    check_options(args.top_k, args.threshold)
    model = load_artifact(args.model)
    predictor = Predictor(model, batch_size=args.batch_size)
    predictor.check_tasks(args.tasks)
    examples = read_examples(args, model.metadata)
    if not examples:
        raise DataError(f"--input {args.input!r} holds no inputs")
    lines = predictor.predict(examples, args.tasks, top_k=args.top_k, threshold=args.threshold,
                              progress=False if args.quiet else None)  # fmt: skip
    write_lines(lines, args.output)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from mtl_jax.deploy.artifact import load_artifact  # noqa: PLC0415
    from mtl_jax.deploy.predict import Predictor  # noqa: PLC0415
    from mtl_jax.deploy.server import MAX_CHARS, serve  # noqa: PLC0415

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be in 1..65535")
    if args.max_batch < 1 or args.window_ms < 0:
        raise ConfigError("--max-batch must be positive and --window-ms non-negative")
    try:
        import starlette  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as error:
        raise ConfigError("mtl-jax serve needs the serve extra; fix: pip install 'mtl_jax[serve]' (uvicorn, starlette)") from error
    predictor = Predictor(load_artifact(args.model), batch_size=args.max_batch, max_chars=MAX_CHARS, size_factor=4)
    return serve(predictor, args.host, args.port, max_batch=args.max_batch, window_s=args.window_ms / 1000)


def main(argv: list[str] | None = None) -> int:
    """``python -m mtl_jax.cli.deploy ...`` is ``mtl-jax ...``: the same parser, errors and exit codes."""
    from mtl_jax.cli.main import main as mtl_jax  # noqa: PLC0415 - cli.main imports this module

    return mtl_jax(argv)


if __name__ == "__main__":
    sys.exit(main())

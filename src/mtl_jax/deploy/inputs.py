"""Reading ``mtl-jax predict`` inputs: .txt, .jsonl, .csv, .npz files or stdin.

* ``.txt``: one text per line (blank lines skipped);
* ``.jsonl``: one JSON value per line: with ``field``, that field of each object; without,
  the value itself (a string, a list of tokens, an array, or an object with the input keys);
* ``.csv``: the column ``column`` (default ``text``) of each row;
* ``.npz`` (non-text models): arrays under the input keys, examples along the first axis
  (QM9: ``atomic_numbers`` (N, A) with 0 = no atom, and ``positions`` (N, A, 3));
* ``-``: stdin, read as JSONL when ``field`` is given or the model is not a text model,
  else as text lines.

Every problem (missing file, bad JSON on line k, missing field) is a DataError naming the
file and line.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mtl_jax.errors import DataError

SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".npz")


def text_lines(stream: io.TextIOBase) -> list[str]:
    return [line.rstrip("\r\n") for line in stream if line.strip()]


def json_lines(stream: io.TextIOBase, name: str, field: str | None) -> list[Any]:
    values = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{name}, line {number}: not JSON ({error.msg}); fix: one JSON value per line") from error
        if field is not None:
            if not isinstance(value, dict) or field not in value:
                raise DataError(f"{name}, line {number}: no field {field!r}; fix: check --field")
            value = value[field]
        values.append(value)
    return values


def csv_column(stream: io.TextIOBase, name: str, column: str) -> list[str]:
    try:
        rows = list(csv.DictReader(stream))
    except csv.Error as error:
        raise DataError(f"{name}: unreadable CSV ({error})") from error
    if rows and column not in rows[0]:
        raise DataError(f"{name}: no column {column!r}; columns: {', '.join(rows[0])}; fix: pass --column")
    return [row[column] for row in rows]


def npz_examples(path: Path, kind: str, keys: list[str]) -> list[Any]:
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: np.asarray(stored[key]) for key in stored.files}
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable .npz ({error})") from error
    if kind == "graph":
        keys = ["atomic_numbers", "positions"]
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DataError(f"{path}: no array {missing[0]!r}; arrays: {sorted(arrays)}; fix: store the inputs under {keys}")
    count = len(arrays[keys[0]])
    if any(len(arrays[key]) != count for key in keys):
        raise DataError(f"{path}: the arrays {keys} hold different numbers of examples")
    if kind != "graph":
        return [arrays[keys[0]][i] for i in range(count)]
    examples = []
    for atoms, positions in zip(arrays["atomic_numbers"], arrays["positions"]):
        real = np.asarray(atoms) > 0
        examples.append({"atomic_numbers": np.asarray(atoms)[real], "positions": np.asarray(positions)[real]})
    return examples


def read_inputs(source: str, *, kind: str, keys: list[str], field: str | None = None, column: str | None = None) -> list[Any]:
    """The examples of ``source`` (a path or ``-``), see the module docstring."""
    if source == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
        if field is not None or kind != "text":
            return json_lines(stream, "stdin", field)
        return text_lines(stream)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"--input {source!r}: unknown file type {suffix!r}; accepted: {', '.join(SUFFIXES)} or - (stdin)")
    if not path.is_file():
        raise DataError(f"--input {source!r}: no such file")
    if suffix == ".npz":
        if kind == "text":
            raise DataError(f"--input {source!r}: a text model reads .txt, .jsonl or .csv, not .npz")
        return npz_examples(path, kind, keys)
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            if suffix == ".txt":
                return text_lines(stream)
            if suffix == ".csv":
                return csv_column(stream, str(path), column or "text")
            return json_lines(stream, str(path), field)
    except UnicodeDecodeError as error:
        raise DataError(f"--input {source!r}: not UTF-8 text ({error.reason})") from error

"""Batched prediction with an artifact: inputs → one JSON dict each, in input order.

Every input is checked first (:mod:`mtl_jax.deploy.preprocess`; a bad one raises DataError
naming its index before anything runs). Inputs are then grouped by length bucket (text;
one group otherwise) and cut into batches of at most ``batch_size``; each batch is padded
along the batch axis to the next power of two (capped at ``batch_size``) with copies of
its first row (to the next power of ``size_factor`` for a server), so the number of
compiled shapes stays ``len(buckets) × log2(batch_size)`` whatever the input. Results are put back in input order.

One prediction: ``{"index": i, "tokens": [...] (text only), "tasks": {task: prediction}}``
with each task's prediction as :mod:`mtl_jax.deploy.postprocess` describes.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mtl_jax.deploy import postprocess
from mtl_jax.deploy.artifact import Artifact
from mtl_jax.deploy.preprocess import Prepared, preprocessor_for
from mtl_jax.errors import ConfigError

PROGRESS_MIN_INPUTS = 512


def batch_sizes(max_batch: int, factor: int = 2) -> tuple[int, ...]:
    """Powers of ``factor`` below ``max_batch``, then ``max_batch``: the padded batch sizes."""
    sizes = []
    size = 1
    while size < max_batch:
        sizes.append(size)
        size *= factor
    return (*sizes, max_batch)


def padded_size(n: int, sizes: Sequence[int]) -> int:
    return next(size for size in sizes if size >= n)


class Predictor:
    """Predictions of an artifact's tasks (see the module docstring)."""

    def __init__(self, model: Artifact, batch_size: int = 64, max_chars: int = 10_000, size_factor: int = 2):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size!r}: must be a positive integer")
        self.model = model
        self.metadata = model.metadata
        self.preprocessor = preprocessor_for(model.metadata, max_chars)
        self.batch_size = batch_size
        self.sizes = batch_sizes(batch_size, size_factor)
        self.tasks = {task["name"]: task for task in model.metadata["tasks"]}

    @property
    def is_text(self) -> bool:
        return self.metadata["input"]["kind"] == "text"

    def check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        """The requested task names (all by default); ConfigError for an unknown one."""
        if not tasks:
            return list(self.tasks)
        unknown = [name for name in tasks if name not in self.tasks]
        if unknown:
            raise ConfigError(f"unknown task {unknown[0]!r}; this model's tasks: {', '.join(self.tasks)}")
        return list(dict.fromkeys(tasks))

    def prepare(self, examples: Iterable[Any], start: int = 0) -> list[Prepared]:
        return [self.preprocessor.prepare(example, start + i) for i, example in enumerate(examples)]

    def bucket_shapes(self) -> list[tuple[int, int]]:
        """Every (batch size, length) a call can take: what a server precompiles."""
        lengths = self.preprocessor.buckets if self.is_text else (0,)
        return [(b, l) for l in lengths for b in self.sizes]

    def warm_up(self) -> int:
        """Compile every bucket shape once (with padding inputs); returns their number."""
        shapes = self.bucket_shapes()
        for size, length in shapes:
            self.model.run(self.dummy_batch(size, length))
        return len(shapes)

    def dummy_batch(self, size: int, length: int) -> dict[str, np.ndarray]:
        layout = self.metadata["input"]["keys"]
        symbols = {"b": size, "l": max(length, 1)}
        return {key: np.zeros([symbols.get(d, d) for d in entry["shape"]], entry["dtype"]) for key, entry in layout.items()}

    def run_batch(self, items: Sequence[Prepared], length: int) -> list[dict[str, np.ndarray]]:
        """Scores per item (:func:`postprocess.batch_scores`; tagging rows cut to the item's tokens)."""
        size = padded_size(len(items), self.sizes)
        padded = list(items) + [items[0]] * (size - len(items))
        outputs = self.model.run(self.preprocessor.collate(padded, length))
        scores = {name: postprocess.batch_scores(self.tasks[name], value[: len(items)]) for name, value in outputs.items()}
        rows = []
        for i, item in enumerate(items):
            row = {}
            for name, value in scores.items():
                row[name] = value[i, : item.length] if self.tasks[name]["kind"] == "tagging" else value[i]
            rows.append(row)
        return rows

    def batches(self, items: Sequence[Prepared]) -> list[tuple[int, list[Prepared]]]:
        """(bucket length, items) batches: grouped by bucket, at most ``batch_size`` each."""
        groups: dict[int, list[Prepared]] = defaultdict(list)
        for item in items:
            groups[self.preprocessor.bucket(item)].append(item)
        return [
            (length, group[start : start + self.batch_size])
            for length, group in sorted(groups.items())
            for start in range(0, len(group), self.batch_size)
        ]

    def scores(self, items: Sequence[Prepared], progress: bool = False) -> list[dict[str, np.ndarray]]:
        """Scores of every item (see :meth:`run_batch`), in the order of ``items``."""
        plan = self.batches(items)
        position = {id(item): k for k, item in enumerate(items)}
        results: list[dict[str, np.ndarray] | None] = [None] * len(items)
        bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415 - only for long command-line inputs

            bar = tqdm(total=len(items), unit="input", file=sys.stderr, dynamic_ncols=True)
        try:
            for length, batch in plan:
                for item, row in zip(batch, self.run_batch(batch, length)):
                    results[position[id(item)]] = row
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return results  # type: ignore[return-value]

    def format(self, item: Prepared, outputs: Mapping[str, np.ndarray], tasks: Sequence[str],
               top_k: int = 1, threshold: float = 0.5) -> dict[str, Any]:  # fmt: skip
        prediction: dict[str, Any] = {"index": item.index}
        if self.is_text:
            prediction["tokens"] = list(item.tokens)
        prediction["tasks"] = {
            name: postprocess.task_prediction(self.tasks[name], outputs[name], top_k=top_k, threshold=threshold)
            for name in tasks
        }
        return prediction

    def predict(self, examples: Sequence[Any], tasks: Sequence[str] | None = None, *, top_k: int = 1,
                threshold: float = 0.5, progress: bool | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """One prediction per example, in order (progress bar on stderr for long inputs
        when ``progress`` is None)."""
        names = self.check_tasks(tasks)
        check_options(top_k, threshold)
        items = self.prepare(examples)
        show = len(items) >= PROGRESS_MIN_INPUTS if progress is None else progress
        outputs = self.scores(items, progress=show)
        return [self.format(item, row, names, top_k, threshold) for item, row in zip(items, outputs)]


def check_options(top_k: int, threshold: float) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"--top-k {top_k!r}: must be a positive integer")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold {threshold!r}: must be a probability in [0, 1]")

"""Collate functions: stored examples -> a batch following :mod:`mtl_jax.data.spec`.

Every label array comes with its ``<label_key>_mask`` (True = counts): stored masks where a
dataset has them (DANTEStocks emotions without a majority), padding False, else True.
Each collate is a small picklable object so grain's reader threads can share it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from mtl_jax.types import HostBatch, mask_key

from mtl_jax.data import bucketing, text

Example = Mapping[str, Any]
MAX_ATOMS = 29  # the largest QM9 molecule (C9 with hydrogens)


def scalar_labels(examples: Sequence[Example], keys: Sequence[str]) -> HostBatch:
    """int32 (B,) labels and bool (B,) masks (the stored ``<key>_mask`` or all True)."""
    batch: HostBatch = {}
    for key in keys:
        batch[key] = np.array([e[key] for e in examples], np.int32)
        name = mask_key(key)
        stored = examples[0].get(name) is not None
        batch[name] = np.array([bool(e[name]) for e in examples]) if stored else np.ones(len(examples), bool)
    return batch


@dataclasses.dataclass(frozen=True)
class ImageCollate:
    """``image`` float32 (B, H, W) and integer class labels."""

    label_keys: tuple[str, ...]

    def __call__(self, examples: Sequence[Example]) -> HostBatch:
        batch = {"image": np.stack([np.asarray(e["image"], np.float32) for e in examples])}
        return batch | scalar_labels(examples, self.label_keys)


@dataclasses.dataclass(frozen=True)
class FeaturesCollate:
    """``features`` float32 (B, F) and one multilabel target float32 (B, K)."""

    label_key: str
    source_key: str = "labels"

    def __call__(self, examples: Sequence[Example]) -> HostBatch:
        labels = np.stack([np.asarray(e[self.source_key], np.float32) for e in examples])
        return {
            "features": np.stack([np.asarray(e["features"], np.float32) for e in examples]),
            self.label_key: labels,
            mask_key(self.label_key): np.ones(len(examples), bool),
        }


@dataclasses.dataclass(frozen=True)
class GraphCollate:
    """QM9: atoms padded to ``max_atoms`` with ``atoms_mask``; one regression label per
    target (normalised units) from ``targets_normalized``."""

    target_keys: tuple[str, ...]
    max_atoms: int = MAX_ATOMS

    def __call__(self, examples: Sequence[Example]) -> HostBatch:
        atomic_numbers, atoms_mask = text.pad_rows([np.asarray(e["atomic_numbers"]) for e in examples], self.max_atoms)
        positions, _ = text.pad_rows([np.asarray(e["positions"]) for e in examples], self.max_atoms, np.float32)
        targets = np.stack([np.asarray(e["targets_normalized"], np.float32) for e in examples])
        batch = {"atomic_numbers": atomic_numbers, "positions": positions, "atoms_mask": atoms_mask}
        for k, key in enumerate(self.target_keys):
            batch[key] = targets[:, k]
            batch[mask_key(key)] = np.ones(len(examples), bool)
        return batch


@dataclasses.dataclass(frozen=True)
class TextCollate:
    """``tokens``/``tokens_mask`` (B, L), tagging labels (B, L) and sentence labels (B,).

    Attributes:
      encoder: token -> id.
      tags: label key -> int32 map from stored tag ids to the tag set (None: unchanged).
      labels: sentence-level classification keys.
      buckets: padded lengths; ``L`` is the ``length`` argument, else the bucket of the
        longest local sentence.
    """

    encoder: text.TokenEncoder
    tags: Mapping[str, np.ndarray | None]
    labels: tuple[str, ...]
    buckets: tuple[int, ...]

    def __call__(self, examples: Sequence[Example], length: int | None = None) -> HostBatch:
        ids = [self.encoder(e["tokens"]) for e in examples]
        if length is None:
            length = bucketing.bucket_length(max(len(row) for row in ids), self.buckets)
        tokens, tokens_mask = text.pad_rows(ids, length)
        batch = {"tokens": tokens, "tokens_mask": tokens_mask}
        for key, id_map in self.tags.items():
            rows = [np.asarray(e[key]) if id_map is None else id_map[np.asarray(e[key])] for e in examples]
            batch[key], batch[mask_key(key)] = text.pad_rows(rows, length)
        return batch | scalar_labels(examples, self.labels)

    def with_encoder(self, encoder: text.TokenEncoder) -> TextCollate:
        return dataclasses.replace(self, encoder=encoder)

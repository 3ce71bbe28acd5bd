"""Yeast: 2,417 genes × 103 expression/phylogenetic features, 14 functional-class labels.

Source: ``river/datasets/yeast.csv.gz`` shipped in the PyPI package ``river`` (the MULAN
multi-label version, OpenML id 40597): columns ``Att1..Att103`` (float) and ``Class1..Class14``
(0/1). Paper: Elisseeff & Weston, "A kernel method for multi-labelled classification",
NeurIPS 2001; MULAN: Tsoumakas et al., JMLR 12 (2011).

Tasks: 14 binary tasks ``class_1`` .. ``class_14`` (one per functional category); the same
labels also as one int32 vector ``labels`` (14,). ``features`` is float32 (103,).

Split: a permutation of the 2,417 rows (file order) seeded with the config's ``seed``
(default 0): the first 917 rows are test (the size of MULAN's standard test set), the next
150 validation, the remaining 1,350 train. ``limit`` keeps the first ``limit`` rows and then
scales the held-out sizes in the same proportions.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.builders import common
from mtl_jax.errors import DataError

DATASET = "yeast"
INSTALL = "pip install --force-reinstall river"
NUM_ROWS = 2417
NUM_FEATURES = 103
NUM_LABELS = 14
NUM_TEST = 917
NUM_VALIDATION = 150


def source_file() -> Path:
    """``yeast.csv.gz`` inside the installed ``river`` package."""
    return common.require_file(DATASET, common.package_dir(DATASET, "river", INSTALL) / "datasets" / "yeast.csv.gz", INSTALL)


def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (n, 103), labels int32 (n, 14)); all 2,417 rows must be present."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        rows = list(csv.reader(io.StringIO(text)))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as error:
        raise common.source_error(DATASET, path, str(error), INSTALL) from error
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    expected = [f"Att{i}" for i in range(1, NUM_FEATURES + 1)] + [f"Class{i}" for i in range(1, NUM_LABELS + 1)]
    if header != expected:
        raise common.source_error(DATASET, path, "unexpected header", INSTALL)
    if any(len(row) != len(expected) for row in body):
        raise common.source_error(DATASET, path, "a row has the wrong number of fields", INSTALL)
    try:
        table = np.array(body, np.float64).reshape(len(body), len(expected))
    except ValueError as error:
        raise common.source_error(DATASET, path, f"non-numeric value ({error})", INSTALL) from error
    common.check_count(DATASET, path, "rows", len(body), NUM_ROWS, INSTALL)
    labels = table[:, NUM_FEATURES:]
    common.check_range(DATASET, path, "labels", labels, 0, 1, INSTALL)
    if not np.all(labels == np.round(labels)):
        raise common.source_error(DATASET, path, "labels are not 0/1 integers", INSTALL)
    return table[:, :NUM_FEATURES].astype(np.float32), labels.astype(np.int32)


def held_out_sizes(num_rows: int) -> tuple[int, int]:
    """(test, validation) sizes: 917 and 150 of 2,417, scaled down for a ``limit``."""
    return round(num_rows * NUM_TEST / NUM_ROWS), round(num_rows * NUM_VALIDATION / NUM_ROWS)


def row_example(features: np.ndarray, labels: np.ndarray) -> common.Example:
    """One stored example: features, the label vector and one scalar per class."""
    example: common.Example = {"features": features, "labels": labels}
    example.update({f"class_{k + 1}": int(labels[k]) for k in range(NUM_LABELS)})
    return example


@dataclasses.dataclass(eq=False)
class YeastConfig(common.SeededConfig):
    """Split seed and optional cap on the rows used (see :class:`common.SeededConfig`)."""


class Yeast(common.PackageDataBuilder, skip_registration=True):
    """Yeast multi-label gene-function data as 14 binary tasks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Yeast from river's bundled MULAN copy."}
    BUILDER_CONFIGS = [YeastConfig(name="default")]
    DESCRIPTION = __doc__
    HOMEPAGE = "https://riverml.xyz/"
    CITATION = "Elisseeff, A., Weston, J. A kernel method for multi-labelled classification. NeurIPS 2001."

    def _features(self) -> tfds.features.FeaturesDict:
        classes = {f"class_{k + 1}": tfds.features.ClassLabel(num_classes=2) for k in range(NUM_LABELS)}
        return tfds.features.FeaturesDict(
            {
                "features": tfds.features.Tensor(shape=(NUM_FEATURES,), dtype=np.float32),
                "labels": tfds.features.Tensor(shape=(NUM_LABELS,), dtype=np.int32),
                **classes,
            }
        )

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        config = self.builder_config
        features, labels = read_table(source_file())
        features, labels = common.take(features, config.limit), common.take(labels, config.limit)
        index = common.seeded_split(DATASET, len(features), config.seed, *held_out_sizes(len(features)))
        return {split: [row_example(features[i], labels[i]) for i in rows] for split, rows in index.items()}


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a Yeast split (``train``, ``validation``, ``test``)."""
    return common.load_split(Yeast, split, data_dir, **config_fields)


__all__ = ["DataError", "Yeast", "YeastConfig", "load", "read_table", "source_file"]

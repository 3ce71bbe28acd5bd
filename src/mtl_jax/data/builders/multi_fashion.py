"""MultiFashion: two Fashion-MNIST images overlaid with offsets; tasks = left and right class.

Source: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from the Debian package
``dataset-fashion-mnist`` (60,000 train and 10,000 test images). Construction: the MultiMNIST
overlay of Sener & Koltun (NeurIPS 2018), :func:`mtl_jax.data.sources.mnist_overlay.make_pairs`, applied
to clothing images as in Lin et al., "Pareto Multi-Task Learning" (NeurIPS 2019).

Split: train pairs are drawn only from the 60,000 Fashion-MNIST train images and test pairs
only from its 10,000 test images. One generator seeded with the config's ``seed`` (default 0)
draws the train pairs, then the test pairs, ``overlay.CHUNK`` (10,000) at a time; defaults
are 60,000 train and 10,000 test pairs. Stored per example: ``image`` float32 28×28 in [0, 1],
``left`` and ``right`` class ids in 0..9 (names in the ``left``/``right`` ClassLabel).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.sources import fashion_mnist
from mtl_jax.data.builders import common, overlay

CLASS_NAMES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip


def source_dir() -> Path:
    """Directory of the Debian package's gzipped IDX files."""
    return fashion_mnist.DEFAULT_DIR


@dataclasses.dataclass(eq=False)
class MultiFashionConfig(overlay.OverlayConfig):
    """Seed and pair counts (defaults: seed 0, 60,000 train, 10,000 test)."""

    num_train: int = 60_000
    num_test: int = 10_000


class MultiFashion(overlay.OverlayBuilder, skip_registration=True):
    """MultiFashion from Debian's Fashion-MNIST."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "MultiFashion from dataset-fashion-mnist."}
    BUILDER_CONFIGS = [MultiFashionConfig(name="default")]
    CLASS_NAMES = CLASS_NAMES
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    CITATION = (
        "Xiao, H., Rasul, K., Vollgraf, R. Fashion-MNIST: a Novel Image Dataset for"
        " Benchmarking Machine Learning Algorithms. arXiv:1708.07747 (2017)."
    )

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        config = self.builder_config
        source = fashion_mnist.load_fashion_mnist(source_dir())
        rng = np.random.default_rng(config.seed)
        sizes = {"train": config.num_train, "test": config.num_test}
        return {split: overlay.chunked_pairs(*source[split], sizes[split], rng) for split in sizes}


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a MultiFashion split (``train``, ``test``)."""
    return common.load_split(MultiFashion, split, data_dir, **config_fields)

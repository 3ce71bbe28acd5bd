"""Shared parts of the two-image overlay builders (``multi_mnist``, ``multi_fashion``).

The construction itself (two images overlaid with opposite offsets, scaled back to 28×28)
is :func:`mtl_jax.data.sources.mnist_overlay.overlay_pairs` / :func:`~mtl_jax.data.sources.mnist_overlay.make_pairs`
(Sener & Koltun, NeurIPS 2018); this module only turns its arrays into stored examples and
declares the common features and config.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.sources import mnist_overlay as multi_mnist
from mtl_jax.data.builders import common

CHUNK = 10_000


@dataclasses.dataclass(eq=False)
class OverlayConfig(common.SeededConfig):
    """``seed`` drives every random choice; ``num_train``/``num_test`` are the pair counts.

    ``limit`` is unused: the pair counts already size the splits.
    """

    num_train: int = 10_000
    num_test: int = 2_000


def pair_examples(pairs: Mapping[str, np.ndarray]) -> list[common.Example]:
    """Per-example dicts of :func:`make_pairs`' arrays (``image``, ``left``, ``right``)."""
    return [
        {"image": image, "left": int(left), "right": int(right)}
        for image, left, right in zip(pairs["image"], pairs["left"], pairs["right"])
    ]


def chunked_pairs(
    images: np.ndarray, labels: np.ndarray, num_examples: int, rng: np.random.Generator, chunk: int = CHUNK
) -> list[common.Example]:
    """``num_examples`` overlay examples, made ``chunk`` at a time to bound peak memory."""
    examples: list[common.Example] = []
    for start in range(0, num_examples, chunk):
        size = min(chunk, num_examples - start)
        examples += pair_examples(multi_mnist.make_pairs(images, labels, size, rng))
    return examples


class OverlayBuilder(common.PackageDataBuilder, skip_registration=True):
    """Features of an overlay dataset: a float32 28×28 image and two 10-way labels."""

    CLASS_NAMES: Sequence[str] = tuple(str(i) for i in range(10))

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=(multi_mnist.IMAGE, multi_mnist.IMAGE), dtype=np.float32),
                "left": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
                "right": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
            }
        )

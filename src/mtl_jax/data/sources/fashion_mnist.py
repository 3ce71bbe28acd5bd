"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from the Debian package.

Source: ``apt-get install dataset-fashion-mnist`` installs the four gzipped IDX files of the
original release under ``/usr/share/datasets/fashion-mnist``: 60,000 train and 10,000 test
28×28 grey-level images of 10 clothing classes. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from mtl_jax.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL = "apt-get install dataset-fashion-mnist"
IMAGE = 28
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
IMAGES_MAGIC = 0x0803
LABELS_MAGIC = 0x0801


def _fail(path: Path, problem: str) -> DataError:
    return DataError(f"fashion_mnist: source file {path} is {problem}; fix: {INSTALL} (reinstall if present)")


def read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 array of a gzipped IDX file whose header must state ``magic`` and ``shape``."""
    if not path.is_file():
        raise _fail(path, "missing")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise _fail(path, f"corrupt or truncated ({error})") from error
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise _fail(path, "not an IDX file of the expected type")
    found = struct.unpack(f">{ndim}I", data[4:header])
    if found != shape or len(data) != header + int(np.prod(shape)):
        raise _fail(path, f"truncated or of the wrong size (header {found}, expected {shape})")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(root: Path = DEFAULT_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split -> (images uint8 (n, 28, 28), labels int32 (n,)) for ``train`` and ``test``."""
    splits = {}
    for split, (images_file, labels_file, size) in FILES.items():
        images = read_idx(root / images_file, IMAGES_MAGIC, (size, IMAGE, IMAGE))
        labels = read_idx(root / labels_file, LABELS_MAGIC, (size,)).astype(np.int32)
        if labels.max() > 9:
            raise _fail(root / labels_file, f"holding labels out of range [0, 9] (max {labels.max()})")
        splits[split] = (images, labels)
    return splits

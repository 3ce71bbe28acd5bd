"""Vision trunk: the LeNet-style CNN of the Multi-MNIST experiments of Sener & Koltun 2018
("Multi-Task Learning as Multi-Objective Optimization", §6.1 and their released code):

    conv 5×5 (10) → max-pool 2 → ReLU → conv 5×5 (20) → max-pool 2 → ReLU
    → flatten → dense (50) → ReLU,

each task then has its own head. On 28×28 inputs the flattened map is 4·4·20 = 320.
Dropout (if any) follows the second convolution and the dense layer.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.representation import POOLED, Representation
from mtl_jax.types import Batch


def image_nhwc(batch: Batch, input_key: str) -> jax.Array:
    """``batch[input_key]`` as float32 (B, H, W, C), adding C = 1 to (B, H, W) images."""
    image = jnp.asarray(batch[input_key]).astype(jnp.float32)
    return image[..., None] if image.ndim == 3 else image


def _valid_conv_pool(size: int) -> int:
    return (size - 4) // 2


class LeNetTrunk(nnx.Module):
    """``{"pooled": (B, features)}`` from images of shape ``image_shape`` (H, W[, C])."""

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        features: int = 50,
        input_key: str = "image",
        dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        height, width = image_shape[0], image_shape[1]
        channels = image_shape[2] if len(image_shape) == 3 else 1
        out_h = _valid_conv_pool(_valid_conv_pool(height))
        out_w = _valid_conv_pool(_valid_conv_pool(width))
        if out_h < 1 or out_w < 1:
            raise ValueError(f"LeNet needs images of at least 16×16 pixels, got {tuple(image_shape)}")
        self.conv1 = nnx.Conv(channels, 10, (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(10, 20, (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.dense = nnx.Linear(out_h * out_w * 20, features, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.input_key = input_key
        self.features = features

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        drop = lambda y: self.dropout(y, rngs=rngs, deterministic=rngs is None)  # noqa: E731
        x = image_nhwc(batch, self.input_key)
        x = nnx.relu(nnx.max_pool(self.conv1(x), (2, 2), (2, 2)))
        x = nnx.relu(nnx.max_pool(drop(self.conv2(x)), (2, 2), (2, 2)))
        x = drop(nnx.relu(self.dense(x.reshape(x.shape[0], -1))))
        return {POOLED: x}

"""Vision trunk: a small ResNet (He et al. 2016, "Deep Residual Learning", §4.2 CIFAR
variant: a 3×3 stem, stages of basic blocks, global average pooling), with GroupNorm (Wu &
He 2018) instead of BatchNorm so the model holds parameters only (no running statistics).

Basic block: y = ReLU(x' + GN(conv3×3(ReLU(GN(conv3×3(x)))))), with x' = x or a strided 1×1
projection when the shape changes.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.lenet import image_nhwc
from mtl_jax.models.representation import POOLED, Representation
from mtl_jax.types import Batch


def _groups(channels: int, wanted: int) -> int:
    groups = min(wanted, channels)
    while channels % groups:
        groups -= 1
    return groups


class BasicBlock(nnx.Module):
    """Two 3×3 convolutions with GroupNorm and a residual connection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int, dtype, rngs: nnx.Rngs):
        g = _groups(out_ch, groups)
        self.conv1 = nnx.Conv(in_ch, out_ch, (3, 3), strides=stride, use_bias=False, dtype=dtype, rngs=rngs)
        self.norm1 = nnx.GroupNorm(out_ch, num_groups=g, dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(out_ch, out_ch, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.GroupNorm(out_ch, num_groups=g, dtype=dtype, rngs=rngs)
        self.projection = (
            nnx.Conv(in_ch, out_ch, (1, 1), strides=stride, use_bias=False, dtype=dtype, rngs=rngs)
            if stride != 1 or in_ch != out_ch
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = x if self.projection is None else self.projection(x)
        return nnx.relu(y + shortcut)


class ResNetTrunk(nnx.Module):
    """``{"pooled": (B, widths[-1])}`` from images of shape (H, W[, C])."""

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
        groups: int = 8,
        input_key: str = "image",
        dropout: float = 0.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        channels = image_shape[2] if len(image_shape) == 3 else 1
        self.stem = nnx.Conv(channels, widths[0], (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.stem_norm = nnx.GroupNorm(widths[0], num_groups=_groups(widths[0], groups), dtype=dtype, rngs=rngs)
        blocks, in_ch = [], widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_ch, width, stride, groups, dtype, rngs))
                in_ch = width
        self.blocks = nnx.List(blocks)
        self.dropout = nnx.Dropout(dropout)
        self.input_key = input_key
        self.features = widths[-1]

    def __call__(self, batch: Batch, *, rngs: nnx.Rngs | None = None) -> Representation:
        x = nnx.relu(self.stem_norm(self.stem(image_nhwc(batch, self.input_key))))
        for block in self.blocks:
            x = block(x)
        pooled = jnp.mean(x, axis=(1, 2))
        return {POOLED: self.dropout(pooled, rngs=rngs, deterministic=rngs is None)}

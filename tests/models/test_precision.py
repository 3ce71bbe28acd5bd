"""bf16 mixed precision: float32 parameters, bfloat16 compute, float32 outputs and losses."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.factory import build_from_config
from tests.models.fixtures import SMALL, SPEC_OF_TRUNK, TEXT, random_batch, task_names

BF16_TOLERANCE = 0.05  # relative to the output scale: a few bf16 ulps (2⁻⁸) through a small net


@pytest.mark.parametrize("trunk", sorted(SPEC_OF_TRUNK))
def test_bfloat16_agrees_with_float32(trunk, rng):
    spec = SPEC_OF_TRUNK[trunk]
    architecture = "mmoe" if trunk in ("mlp", "bigru") else "hard"
    config = dict(SMALL, trunk=trunk, architecture=architecture)
    model32, params32 = build_from_config(dict(config, dtype="float32"), spec, task_names(spec), nnx.Rngs(0))
    model16, params16 = build_from_config(dict(config, dtype="bfloat16"), spec, task_names(spec), nnx.Rngs(0))
    for a, b in zip(jax.tree.leaves(params32), jax.tree.leaves(params16)):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    batch = random_batch(rng, spec)

    def both(params, batch):  # one compiled program for both precisions, z and the losses
        out16 = model16.apply(params, batch)
        losses = [tuple(task.loss(out16[task.name], batch)) for task in model16.tasks]
        return model32.apply(params, batch), out16, model16.encode(params["shared"], batch, None), losses

    out32, out16, z16, losses = jax.jit(both)(params32, batch)
    assert all(leaf.dtype == jax.numpy.bfloat16 for leaf in jax.tree.leaves(z16))
    for name in task_names(spec):
        assert out16[name].dtype == np.float32
        a, b = np.asarray(out32[name]), np.asarray(out16[name])
        scale = np.abs(a).max() + 1e-3
        assert np.abs(a - b).max() <= BF16_TOLERANCE * scale, name
        assert np.abs(a - b).max() > 0, "bf16 compute should round somewhere"
    for total, count in losses:
        assert total.dtype == np.float32 and count.dtype == np.float32


@pytest.mark.slow
def test_bfloat16_gradients_are_float32_and_close(rng):
    from tests.models.gradients import task_losses

    config = dict(SMALL, trunk="bilstm")
    model32, params = build_from_config(config, TEXT, task_names(TEXT), nnx.Rngs(0))
    model16, _ = build_from_config(dict(config, dtype="bfloat16"), TEXT, task_names(TEXT), nnx.Rngs(0))
    batch = random_batch(rng, TEXT)
    grads = jax.jit(lambda p: [jax.grad(lambda q, m=m: task_losses(m, q, batch).sum())(p) for m in (model32, model16)])
    g32, g16 = grads(params)
    flat32, flat16 = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]) for g in (g32, g16)]
    assert flat16.dtype == np.float32
    cosine = flat32 @ flat16 / (np.linalg.norm(flat32) * np.linalg.norm(flat16))
    assert cosine > 0.99

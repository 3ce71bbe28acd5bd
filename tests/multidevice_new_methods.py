"""Train PCD, COSMOS and PBI 3 steps on 1 and on 4 simulated CPU devices, and augment a text
batch inside ``shard_map`` on 1 and 4 devices (run as a subprocess).

Usage: python -m tests.multidevice_new_methods OUT.npz — saves every parameter leaf and the
losses as ``<method>/<leaf>@<devices>`` and the augmented arrays as ``augment/<key>@<devices>``.
XLA_FLAGS must be set before JAX is imported.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = f"{os.environ.get('MTL_JAX_TEST_XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from mtl_jax.aggregators.cosmos import cosmos  # noqa: E402
from mtl_jax.aggregators.pbi import pbi  # noqa: E402
from mtl_jax.aggregators.pcd import pcd  # noqa: E402
from mtl_jax.data.augment import make_augmentation, on_device_slice  # noqa: E402
from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec  # noqa: E402
from mtl_jax.parallel import DATA_AXIS, shard_batch  # noqa: E402
from mtl_jax.surgery import data_mesh  # noqa: E402
from tests.helpers import flat_params, random_batch, run_steps, small_model  # noqa: E402

NUM_TASKS, GLOBAL_BATCH, STEPS = 3, 32, 3
CASES = {
    "pcd": (lambda: pcd(primary=[0], secondary_weight=0.5), "representation"),
    "cosmos": (lambda: cosmos(dirichlet_alpha=1.0), "full"),
    "pbi": (lambda: pbi(ideal="running_min"), "full"),
}


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(99)
    batches = [random_batch(rng, GLOBAL_BATCH, NUM_TASKS) for _ in range(STEPS)]
    results = {}
    for name, (make, mode) in CASES.items():
        for count in (1, 4):
            model, params = small_model(NUM_TASKS)
            state, metrics = run_steps(model, params, batches, make(), mode, optax.sgd(0.3, momentum=0.9),
                                       devices=jax.devices()[:count], gradient_stats=False)
            for path, leaf in flat_params(state.params).items():
                results[f"{name}/{path}@{count}"] = leaf
            results[f"{name}/loss@{count}"] = np.stack([np.asarray(m["loss"]) for m in metrics])
    results.update(augmented_text(rng))
    np.savez(sys.argv[1], **results)


def augmented_text(rng: np.random.Generator) -> dict:
    """A text batch augmented in the per-device body on 1 and 4 devices (global indices)."""
    spec = DatasetSpec("text", InputSpec("text", "tokens", (), 40), (TaskSpec("pos", "tagging", 5),))
    augment = make_augmentation({"token_deletion": 0.2, "token_swap": 0.3, "span_mask": 0.1}, spec)
    lengths = rng.integers(1, 11, GLOBAL_BATCH)
    mask = np.arange(10)[None] < lengths[:, None]
    batch = {"tokens": np.where(mask, rng.integers(2, 40, (GLOBAL_BATCH, 10)), 0).astype(np.int32),
             "tokens_mask": mask, "pos": rng.integers(0, 5, (GLOBAL_BATCH, 10)).astype(np.int32), "pos_mask": mask}
    out = {}
    for count in (1, 4):
        mesh = data_mesh(jax.devices()[:count])
        body = on_device_slice(augment, seed=5)
        spec_of = jax.sharding.PartitionSpec(DATA_AXIS)
        sharded = jax.jit(jax.shard_map(lambda b: body(b, 11), mesh=mesh, in_specs=(spec_of,), out_specs=spec_of))
        for key, value in jax.device_get(sharded(shard_batch(batch, mesh))).items():
            out[f"augment/{key}@{count}"] = np.asarray(value)
    return out


if __name__ == "__main__":
    main()

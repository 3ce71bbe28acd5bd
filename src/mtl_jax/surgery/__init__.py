"""The compiled core: per-task Jacobians, the train state, the step, the non-finite guard
and gradient statistics. Pure and jit-only; it imports nothing from the host floors
(evaluation, training, cli). See docs/design.md."""

from mtl_jax.parallel import data_mesh, replicate, shard_batch
from mtl_jax.surgery.state import TrainState, create_train_state
from mtl_jax.surgery.step import MODES, TrainStep, make_train_step

__all__ = [
    "MODES",
    "TrainState",
    "TrainStep",
    "create_train_state",
    "data_mesh",
    "make_train_step",
    "replicate",
    "shard_batch",
]

"""Training: the train state, the data-parallel mesh and the compiled train step."""

from mtl_jax.training.mesh import data_mesh, replicate, shard_batch
from mtl_jax.training.state import TrainState, create_train_state
from mtl_jax.training.step import MODES, TrainStep, make_train_step

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

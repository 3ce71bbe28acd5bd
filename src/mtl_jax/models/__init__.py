"""Models: tasks, trunks, heads and multi-task architectures, exposed as pure functions."""

from mtl_jax.models.classification import classification_task
from mtl_jax.models.mlp import MLPTrunk
from mtl_jax.models.multitask import MultiTaskModel, TaskModule, assemble_model, build_model
from mtl_jax.models.task import Statistic, Task

__all__ = [
    "MLPTrunk",
    "MultiTaskModel",
    "Statistic",
    "Task",
    "TaskModule",
    "assemble_model",
    "build_model",
    "classification_task",
]

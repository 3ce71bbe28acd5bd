"""Models: tasks, trunks and heads, exposed to the step as pure functions."""

from mtl_jax.models.classification import classification_task
from mtl_jax.models.mlp import MLPTrunk
from mtl_jax.models.multitask import MultiTaskModel, build_model
from mtl_jax.models.task import Statistic, Task

__all__ = ["MLPTrunk", "MultiTaskModel", "Statistic", "Task", "build_model", "classification_task"]

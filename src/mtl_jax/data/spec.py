"""What a dataset promises the model and the trainer: its input and its tasks.

This is the contract between ``mtl_jax.data`` (which fills batches), ``mtl_jax.models``
(which builds trunks and heads from it) and ``mtl_jax.training`` (which picks metrics).

Batch conventions (every array has the global or local batch axis first):

* text: ``tokens`` int32 (B, L) ids (0 = padding, 1 = unknown), ``tokens_mask`` bool (B, L);
* image: ``image`` float32 (B, H, W) or (B, H, W, C);
* graph (QM9): ``atomic_numbers`` int32 (B, N) (0 = padding atom), ``positions`` float32
  (B, N, 3), ``atoms_mask`` bool (B, N);
* features (tabular): ``features`` float32 (B, F).

A task's labels live under ``batch[task.label_key]`` and an optional mask under
``batch[task.mask_key]`` (True = counts). Shapes per kind:

* ``classification``: int32 (B,), mask (B,);
* ``tagging``: int32 (B, L), mask (B, L) (padding tokens and unlabelled tokens False);
* ``multilabel``: float32 0/1 (B, K), mask (B,);
* ``regression``: float32 (B,) in normalised units, mask (B,); ``target_mean`` and
  ``target_std`` map it back (value = normalised · std + mean) so MAE is reported in the
  original units.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from mtl_jax.types import mask_key

TaskKind = Literal["classification", "tagging", "multilabel", "regression"]
TASK_KINDS: tuple[str, ...] = ("classification", "tagging", "multilabel", "regression")
InputKind = Literal["text", "image", "graph", "features"]
INPUT_KINDS: tuple[str, ...] = ("text", "image", "graph", "features")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task a dataset offers.

    Attributes:
      name: task name (unique within a model).
      kind: one of ``TASK_KINDS``.
      num_outputs: classes (classification, tagging), labels (multilabel), 1 (regression).
      label_key: batch key of the labels (defaults to ``name``).
      class_names: optional names of the classes or labels.
      target_mean, target_std: regression only, to undo the normalisation.
      units: regression only, the original units (for reports).
    """

    name: str
    kind: TaskKind
    num_outputs: int
    label_key: str = ""
    class_names: tuple[str, ...] = ()
    target_mean: float = 0.0
    target_std: float = 1.0
    units: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: unknown kind {self.kind!r}; accepted: {TASK_KINDS}")
        if not self.label_key:
            object.__setattr__(self, "label_key", self.name)

    @property
    def mask_key(self) -> str:
        return mask_key(self.label_key)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """The trunk's input.

    Attributes:
      kind: one of ``INPUT_KINDS``.
      key: the batch key of the input (``tokens``, ``image``, ``atomic_numbers``, ``features``).
      shape: per-example shape without padding-dependent axes (e.g. (28, 28) for images,
        (103,) for features, () for text and graphs).
      vocab_size: text: number of token ids including padding (0) and unknown (1);
        graph: number of atom types (max atomic number + 1).
    """

    kind: InputKind
    key: str
    shape: tuple[int, ...] = ()
    vocab_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"unknown input kind {self.kind!r}; accepted: {INPUT_KINDS}")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset's input and the tasks it offers."""

    name: str
    input: InputSpec
    tasks: tuple[TaskSpec, ...]

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"dataset {self.name!r} has no task {name!r}; tasks: {[t.name for t in self.tasks]}")

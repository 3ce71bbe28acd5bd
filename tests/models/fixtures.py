"""Small dataset specs and random batches for the model tests (every input kind, every head)."""

from __future__ import annotations

import numpy as np

from mtl_jax.data.spec import DatasetSpec, InputSpec, TaskSpec

VOCAB = 30
LENGTH = 7
ATOM_TYPES = 10
ATOMS = 6
IMAGE = (20, 20)
FEATURES = 12

POOLED_TASKS = (
    TaskSpec("kind", "classification", 3),
    TaskSpec("tags", "multilabel", 4),
    TaskSpec("score", "regression", 1, target_mean=2.0, target_std=3.0),
)
TEXT = DatasetSpec(
    "text", InputSpec("text", "tokens", (), VOCAB), POOLED_TASKS + (TaskSpec("pos", "tagging", 5),)
)
IMAGES = DatasetSpec("images", InputSpec("image", "image", IMAGE), POOLED_TASKS)
GRAPHS = DatasetSpec("graphs", InputSpec("graph", "atomic_numbers", (), ATOM_TYPES), POOLED_TASKS)
TABLE = DatasetSpec("table", InputSpec("features", "features", (FEATURES,)), POOLED_TASKS)

SPEC_OF_TRUNK = {
    "bag_of_embeddings": TEXT,
    "bilstm": TEXT,
    "bigru": TEXT,
    "transformer": TEXT,
    "lenet": IMAGES,
    "resnet": IMAGES,
    "mpnn": GRAPHS,
    "mlp": TABLE,
}
SMALL = {
    "embed_dim": 8,
    "hidden": 8,
    "num_heads": 2,
    "max_length": 32,
    "widths": (4, 8),
    "groups": 2,
    "num_rbf": 8,
    "expert_hidden": (8,),
    "column_hidden": (8, 8),
    "attention_width": 8,
    "num_experts": 4,
}
ARCHITECTURES = ("hard", "mmoe", "dselect_k", "cgc", "ple", "cross_stitch", "mtan")


def task_names(spec: DatasetSpec) -> list[str]:
    return [task.name for task in spec.tasks]


def _lengths(rng: np.random.Generator, batch_size: int, length: int) -> np.ndarray:
    return rng.integers(2, length + 1, batch_size)


def random_batch(rng: np.random.Generator, spec: DatasetSpec, batch_size: int = 6) -> dict:
    """A batch following ``mtl_jax.data.spec`` with random inputs, labels and some masks."""
    batch: dict[str, np.ndarray] = {}
    kind = spec.input.kind
    if kind == "text":
        mask = np.arange(LENGTH)[None, :] < _lengths(rng, batch_size, LENGTH)[:, None]
        batch["tokens"] = np.where(mask, rng.integers(1, VOCAB, (batch_size, LENGTH)), 0).astype(np.int32)
        batch["tokens_mask"] = mask
    elif kind == "image":
        batch["image"] = rng.random((batch_size, *IMAGE), dtype=np.float32)
    elif kind == "graph":
        mask = np.arange(ATOMS)[None, :] < _lengths(rng, batch_size, ATOMS)[:, None]
        batch["atomic_numbers"] = np.where(mask, rng.integers(1, ATOM_TYPES, (batch_size, ATOMS)), 0).astype(np.int32)
        batch["positions"] = (rng.standard_normal((batch_size, ATOMS, 3)) * 1.5 * mask[..., None]).astype(np.float32)
        batch["atoms_mask"] = mask
    else:
        batch["features"] = rng.standard_normal((batch_size, FEATURES)).astype(np.float32)
    for task in spec.tasks:
        if task.kind == "classification":
            batch[task.label_key] = rng.integers(0, task.num_outputs, batch_size).astype(np.int32)
        elif task.kind == "multilabel":
            batch[task.label_key] = (rng.random((batch_size, task.num_outputs)) < 0.5).astype(np.float32)
        elif task.kind == "regression":
            batch[task.label_key] = rng.standard_normal(batch_size).astype(np.float32)
        else:
            batch[task.label_key] = rng.integers(0, task.num_outputs, (batch_size, LENGTH)).astype(np.int32)
            batch[task.mask_key] = batch["tokens_mask"].copy()
    return batch

"""``export_model``: a trained multi-task model → an artifact (:mod:`mtl_jax.deploy.artifact`).

The exported function is the deterministic forward pass of every task head,
``model.apply(params, inputs)``, traced with a symbolic batch dimension (and, for text, a
symbolic sequence length) and lowered for the CPU and CUDA (CPU only if CUDA lowering
fails; ``metadata["platforms"]`` says which).

``metadata.json`` records what a user of the artifact needs and nothing they must guess:

* ``format``, ``versions`` (mtl_jax, jax, jaxlib, numpy), ``platforms``;
* ``dataset``, ``input`` (kind and the batch keys with dtypes and symbolic shapes);
* ``tasks``: each task's kind, number of outputs, label names, and for regression the
  units and the train-split normalisation (value = output · std + mean);
* ``preprocessing``: text: the vocabulary (id order), lower-casing, padding and unknown
  ids, length buckets and the longest accepted length, and the tokeniser for raw text;
  images, graphs and tables: the per-example shape (and padding of atoms);
* ``source``: run directory, checkpoint and step, the resolved config and its hash;
* ``metrics``: the run's validation and test metrics (``results.json``);
* ``lineage``: for a fine-tuned run, where its initial parameters came from.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

import mtl_jax
from mtl_jax.data.collate import MAX_ATOMS
from mtl_jax.data.spec import DatasetSpec, TaskSpec
from mtl_jax.data.text import PAD_ID, UNK_ID
from mtl_jax.deploy import artifact
from mtl_jax.deploy.naming import named_leaves
from mtl_jax.deploy.preprocess import WORD_TOKENIZER
from mtl_jax.deploy.source import TrainedRun
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.types import PyTree, mask_key


def config_hash(config: Mapping[str, Any]) -> str:
    """sha1 of the resolved config as sorted JSON (its first 8 digits name default run dirs)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()


def input_layout(spec: DatasetSpec) -> dict[str, dict[str, Any]]:
    """The exported function's inputs: batch keys, dtypes, shapes with "b" / "l" axes."""
    kind, key, shape = spec.input.kind, spec.input.key, list(spec.input.shape)
    b, l = artifact.BATCH_AXIS, artifact.LENGTH_AXIS
    if kind == "text":
        return {key: {"dtype": "int32", "shape": [b, l]}, mask_key(key): {"dtype": "bool", "shape": [b, l]}}
    if kind == "graph":
        return {
            key: {"dtype": "int32", "shape": [b, MAX_ATOMS]},
            "positions": {"dtype": "float32", "shape": [b, MAX_ATOMS, 3]},
            "atoms_mask": {"dtype": "bool", "shape": [b, MAX_ATOMS]},
        }
    return {key: {"dtype": "float32", "shape": [b, *shape]}}


def task_entry(task: TaskSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": task.name, "kind": task.kind, "num_outputs": task.num_outputs,
                             "labels": list(task.class_names)}  # fmt: skip
    if task.kind == "regression":
        entry.update(units=task.units, target_mean=task.target_mean, target_std=task.target_std)
    return entry


def preprocessing(spec: DatasetSpec, text: Mapping[str, Any] | None) -> dict[str, Any]:
    """How raw inputs become the exported function's inputs, exactly as in training."""
    if spec.input.kind == "text":
        if text is None:
            raise ValueError("a text model needs its vocabulary, lower-casing and buckets")
        return {
            "vocabulary": list(text["vocabulary"]), "lowercase": bool(text["lowercase"]),
            "pad_id": PAD_ID, "unk_id": UNK_ID, "buckets": [int(b) for b in text["buckets"]],
            "max_tokens": int(text["buckets"][-1]), "tokenizer": WORD_TOKENIZER,
            "pre_tokenized": "a list of strings is used as the tokens, as the training data's CoNLL-U tokens are",
        }  # fmt: skip
    if spec.input.kind == "graph":
        return {"max_atoms": MAX_ATOMS, "num_atom_types": spec.input.vocab_size, "positions_units": "Å"}
    return {"shape": list(spec.input.shape), "dtype": "float32"}


def versions() -> dict[str, str]:
    import jaxlib  # noqa: PLC0415

    return {"mtl_jax": mtl_jax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__}


def export_model(
    out: str | Path,
    model: MultiTaskModel,
    params: PyTree,
    spec: DatasetSpec,
    *,
    text: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    lineage: Sequence[Mapping[str, Any]] = (),
    platforms: Sequence[str] = artifact.PLATFORMS,
    overwrite: bool = False,
) -> Path:
    """Write the artifact of ``model`` with ``params`` (tasks: ``model.task_names``)."""
    artifact.check_out_dir(Path(out), overwrite)
    named = {name: np.asarray(jax.device_get(leaf)) for name, leaf in named_leaves(params).items()}
    treedef = jax.tree.structure(params)

    def infer(leaves: list, inputs: dict) -> dict:
        return model.apply(jax.tree.unflatten(treedef, leaves), inputs)

    layout = input_layout(spec)
    exported, lowered_for = artifact.export_function(infer, list(named.values()), layout, platforms)
    metadata = {
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platforms": list(lowered_for),
        "dataset": spec.name,
        "input": {"kind": spec.input.kind, "keys": layout},
        "tasks": [task_entry(spec.task(name)) for name in model.task_names],
        "outputs": "classification/tagging/multilabel: logits; regression: normalised (value = output * target_std + target_mean)",
        "preprocessing": preprocessing(spec, text),
        "source": dict(source or {}),
        "metrics": dict(metrics or {}),
        "lineage": [dict(entry) for entry in lineage],
        "params": {"count": int(sum(v.size for v in named.values()))},
    }
    return artifact.write_artifact(out, exported, named, metadata, overwrite=overwrite)


def lineage_of(run: TrainedRun) -> list[dict[str, Any]]:
    """The chain of initialisations of a run: its ``init_from.json`` and that source's own."""
    if not run.init_from:
        return []
    entry = dict(run.init_from)
    earlier = entry.pop("lineage", [])
    entry["loaded"] = len(entry.get("loaded", []))  # how many leaves came from the source
    return [entry, *earlier]


def export_run(run: TrainedRun, out: str | Path, *, overwrite: bool = False,
               platforms: Sequence[str] = artifact.PLATFORMS) -> Path:  # fmt: skip
    """The artifact of a restored run (see :func:`mtl_jax.deploy.source.open_run`)."""
    source = {
        "run_dir": str(run.run_dir.resolve()), "checkpoint": run.checkpoint, "step": run.step,
        "config_hash": config_hash(run.config), "config": run.config,
    }  # fmt: skip
    metrics = {split: run.results[split] for split in ("validation", "test") if split in run.results}
    if metrics:
        metrics["step"] = run.results.get("step")  # the run's final evaluation (may differ from the exported step)
    return export_model(
        out, run.model, run.params, run.spec, text=run.text, source=source, metrics=metrics,
        lineage=lineage_of(run), platforms=platforms, overwrite=overwrite,
    )  # fmt: skip

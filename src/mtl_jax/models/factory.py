"""``build_from_config``: a multi-task model for a dataset from a plain config dict.

Config schema (every key optional; unknown keys are errors). Defaults in ``DEFAULTS``.

Trunk (must fit the dataset's input kind, ``TRUNKS_FOR_INPUT``):
  trunk           "bag_of_embeddings" | "bilstm" | "bigru" | "transformer" (text),
                  "lenet" | "resnet" (image), "mpnn" (graph), "mlp" (features, image)
  embed_dim       text: embedding size (bag_of_embeddings, bilstm, bigru)
  hidden          width: dense layer (bag_of_embeddings), LSTM/GRU units per direction,
                  transformer model width, MPNN atom features, MLP layer width,
                  LeNet dense features
  num_layers      recurrent layers, transformer blocks, MPNN interactions, MLP layers
  num_heads, mlp_dim, max_length, positions ("sinusoidal" | "learned")   transformer
  widths, blocks_per_stage, groups                                       resnet
  cutoff (Å), num_rbf, readout ("sum" | "set2set"), set2set_steps        mpnn
Architecture:
  architecture    "hard" | "mmoe" | "dselect_k" | "cgc" | "ple" | "cross_stitch" | "mtan" | "ltb"
  num_experts, expert_hidden (tuple), top_k (dselect_k)                  mmoe, dselect_k
  num_shared_experts, num_task_experts, expert_hidden, levels (ple)      cgc, ple
  column_hidden (tuple)                                                  cross_stitch
  attention_levels, attention_width                                      mtan
  branch_hidden (tuple: one width per branching layer, the last per task),
  branch_nodes (candidate nodes per lower layer; 0: one per task),
  gumbel_temperature (> 0)                                               ltb (Learning to Branch)
Heads and training tools:
  tower           hidden sizes of each task's MLP tower (tuple; empty: linear head)
  dropout         dropout rate in trunk, experts and towers
  word_dropout    text: probability of replacing a token by the unknown id at train time
  label_smoothing classification and tagging targets
  regression_loss "mse" | "l1"
  dtype           "float32" | "bfloat16": compute dtype (parameters stay float32, losses
                  are computed in float32)

Which parameters are shared and which task-specific is each architecture's choice, stated
in its module (``mmoe``, ``ple``, ``cross_stitch``, ``mtan``, ``ltb``); hard sharing: the trunk is
shared, the heads task-specific.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Mapping, Sequence

import jax.numpy as jnp
from flax import nnx

from mtl_jax.errors import ConfigError
from mtl_jax.data.spec import DatasetSpec
from mtl_jax.models.bag_of_embeddings import BagOfEmbeddingsTrunk
from mtl_jax.models.composition import SharedEncoder
from mtl_jax.models.cross_stitch import build_cross_stitch
from mtl_jax.models.lenet import LeNetTrunk
from mtl_jax.models.losses import REGRESSION_LOSSES
from mtl_jax.models.ltb import build_ltb
from mtl_jax.models.message_passing import READOUTS, MessagePassingTrunk
from mtl_jax.models.mlp import MLPTrunk
from mtl_jax.models.mmoe import build_mmoe
from mtl_jax.models.mtan import build_mtan
from mtl_jax.models.multitask import MultiTaskModel, PyTree, assemble_model
from mtl_jax.models.ple import build_ple
from mtl_jax.models.recurrent import BiRecurrentTrunk
from mtl_jax.models.representation import keys_for_task_kinds
from mtl_jax.models.resnet import ResNetTrunk
from mtl_jax.models.task import Task
from mtl_jax.models.task_kinds import task_from_spec
from mtl_jax.models.transformer import POSITIONS, TransformerTrunk

DEFAULTS: dict[str, Any] = {
    "trunk": "mlp",
    "embed_dim": 64,
    "hidden": 128,
    "num_layers": 1,
    "num_heads": 4,
    "mlp_dim": 0,
    "max_length": 512,
    "positions": "sinusoidal",
    "widths": (16, 32, 64),
    "blocks_per_stage": 1,
    "groups": 8,
    "cutoff": 5.0,
    "num_rbf": 32,
    "readout": "sum",
    "set2set_steps": 3,
    "architecture": "hard",
    "num_experts": 4,
    "expert_hidden": (64,),
    "top_k": 2,
    "num_shared_experts": 2,
    "num_task_experts": 1,
    "levels": 2,
    "column_hidden": (64, 64),
    "attention_levels": 2,
    "attention_width": 64,
    "branch_hidden": (64, 64),
    "branch_nodes": 0,
    "gumbel_temperature": 1.0,
    "tower": (),
    "dropout": 0.0,
    "word_dropout": 0.0,
    "label_smoothing": 0.0,
    "regression_loss": "mse",
    "dtype": "float32",
}

TRUNKS_FOR_INPUT: Mapping[str, tuple[str, ...]] = {
    "text": ("bag_of_embeddings", "bilstm", "bigru", "transformer"),
    "image": ("lenet", "resnet", "mlp"),
    "graph": ("mpnn",),
    "features": ("mlp",),
}
TRUNKS: tuple[str, ...] = tuple(dict.fromkeys(t for ts in TRUNKS_FOR_INPUT.values() for t in ts))
ARCHITECTURES: tuple[str, ...] = ("hard", "mmoe", "dselect_k", "cgc", "ple", "cross_stitch", "mtan", "ltb")
DTYPES: Mapping[str, Any] = {"float32": None, "bfloat16": jnp.bfloat16}
CHOICES: Mapping[str, tuple[str, ...]] = {
    "trunk": TRUNKS,
    "architecture": ARCHITECTURES,
    "positions": POSITIONS,
    "readout": READOUTS,
    "regression_loss": REGRESSION_LOSSES,
    "dtype": tuple(DTYPES),
}
_RATES = ("dropout", "word_dropout", "label_smoothing")


def _check_value(key: str, value: Any) -> Any:
    default = DEFAULTS[key]
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ConfigError(f"model.{key}: unknown value {value!r}; accepted values: {', '.join(CHOICES[key])}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v > 0 for v in value):
            raise ConfigError(f"model.{key}: expected a tuple of positive ints (like {default!r}), got {value!r}")
        return tuple(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"model.{key}: expected a number (like {default!r}), got {value!r}")
        if key in _RATES and not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{key}: expected a rate in [0, 1), got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"model.{key}: expected a non-negative int (like {default!r}), got {value!r}")
    return value


def resolve_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """``DEFAULTS`` updated by ``model_config``, every key and value checked."""
    config = dict(DEFAULTS)
    for key, value in model_config.items():
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"model.{key}: unknown key.{hint} Accepted keys: {', '.join(sorted(DEFAULTS))}")
        config[key] = _check_value(key, value)
    return config


def _need_vocab(dataset: DatasetSpec) -> int:
    if dataset.input.vocab_size <= 0:
        raise ConfigError(
            f"dataset {dataset.name!r}: its input spec has no vocab_size; the"
            f" {dataset.input.kind} trunks need it (set InputSpec.vocab_size)"
        )
    return dataset.input.vocab_size


def build_trunk(config: Mapping[str, Any], dataset: DatasetSpec, rngs: nnx.Rngs) -> tuple[nnx.Module, int]:
    """(trunk module, its feature width) for ``config["trunk"]`` on ``dataset``'s input."""
    kind, name, key = dataset.input.kind, config["trunk"], dataset.input.key
    if name not in TRUNKS_FOR_INPUT[kind]:
        raise ConfigError(
            f"model.trunk: {name!r} does not fit dataset {dataset.name!r}, whose input is {kind};"
            f" accepted trunks for {kind}: {', '.join(TRUNKS_FOR_INPUT[kind])}"
        )
    dtype, dropout = DTYPES[config["dtype"]], config["dropout"]
    common = dict(input_key=key, dropout=dropout, dtype=dtype, rngs=rngs)
    text = dict(common, word_dropout=config["word_dropout"])
    hidden, layers = config["hidden"], max(config["num_layers"], 1)
    if name == "bag_of_embeddings":
        trunk = BagOfEmbeddingsTrunk(_need_vocab(dataset), config["embed_dim"], hidden, **text)
    elif name in ("bilstm", "bigru"):
        cell = "lstm" if name == "bilstm" else "gru"
        trunk = BiRecurrentTrunk(_need_vocab(dataset), config["embed_dim"], hidden, cell=cell, num_layers=layers, **text)
    elif name == "transformer":
        if hidden % max(config["num_heads"], 1):
            raise ConfigError(f"model.hidden={hidden} must divide by model.num_heads={config['num_heads']}")
        trunk = TransformerTrunk(
            _need_vocab(dataset), hidden, num_layers=layers, num_heads=config["num_heads"],
            mlp_dim=config["mlp_dim"] or None, max_length=config["max_length"],
            positions=config["positions"], **text,
        )
    elif name == "lenet":
        trunk = LeNetTrunk(dataset.input.shape, features=hidden, **common)
    elif name == "resnet":
        trunk = ResNetTrunk(
            dataset.input.shape, widths=config["widths"], blocks_per_stage=max(config["blocks_per_stage"], 1),
            groups=max(config["groups"], 1), **common,
        )
    elif name == "mpnn":
        trunk = MessagePassingTrunk(
            _need_vocab(dataset), hidden=hidden, num_layers=layers, num_rbf=max(config["num_rbf"], 2),
            cutoff=config["cutoff"], readout=config["readout"], set2set_steps=max(config["set2set_steps"], 1),
            **common,
        )
    else:
        in_features = math.prod(dataset.input.shape)
        if in_features <= 0:
            raise ConfigError(f"dataset {dataset.name!r}: the mlp trunk needs InputSpec.shape, got {dataset.input.shape}")
        trunk = MLPTrunk(in_features, (hidden,) * layers, **common)
    return trunk, trunk.features


def _build_hard(trunk, feature_dim, tasks, *, keys, rngs, **_) -> tuple[MultiTaskModel, PyTree]:
    heads = {task.name: task.make_head(feature_dim, rngs) for task in tasks}
    return assemble_model(SharedEncoder(trunk, keys), heads, tasks)


def _architecture(config: Mapping[str, Any]) -> tuple[Callable[..., tuple[MultiTaskModel, PyTree]], dict]:
    name, dtype, dropout = config["architecture"], DTYPES[config["dtype"]], config["dropout"]
    experts = dict(expert_hidden=config["expert_hidden"], dropout=dropout, dtype=dtype)
    if name == "hard":
        return _build_hard, {}
    if name in ("mmoe", "dselect_k"):
        if config["num_experts"] < 1:
            raise ConfigError("model.num_experts must be at least 1")
        if name == "dselect_k" and not 1 <= config["top_k"] <= config["num_experts"]:
            raise ConfigError(f"model.top_k={config['top_k']} must be in [1, num_experts={config['num_experts']}]")
        gate = "softmax" if name == "mmoe" else "dselect_k"
        return build_mmoe, dict(experts, num_experts=config["num_experts"], gate=gate, top_k=config["top_k"])
    if name in ("cgc", "ple"):
        levels = 1 if name == "cgc" else config["levels"]
        if levels < 1 or config["num_shared_experts"] < 1 or config["num_task_experts"] < 1:
            raise ConfigError("model.levels, num_shared_experts and num_task_experts must be at least 1")
        return build_ple, dict(
            experts, levels=levels, num_shared_experts=config["num_shared_experts"],
            num_task_experts=config["num_task_experts"],
        )
    if name == "cross_stitch":
        return build_cross_stitch, dict(column_hidden=config["column_hidden"], dropout=dropout, dtype=dtype)
    if name == "ltb":
        if not config["branch_hidden"]:
            raise ConfigError("model.branch_hidden needs at least one width (the per-task layer), e.g. (64, 64)")
        if not config["gumbel_temperature"] > 0:
            raise ConfigError(f"model.gumbel_temperature must be > 0, got {config['gumbel_temperature']!r}")
        return build_ltb, dict(
            branch_hidden=config["branch_hidden"], branch_nodes=config["branch_nodes"],
            temperature=config["gumbel_temperature"], dropout=dropout, dtype=dtype,
        )
    if config["attention_levels"] < 1 or config["attention_width"] < 1:
        raise ConfigError("model.attention_levels and model.attention_width must be at least 1")
    return build_mtan, dict(
        width=config["attention_width"], num_levels=config["attention_levels"], dropout=dropout, dtype=dtype
    )


def build_tasks(config: Mapping[str, Any], dataset: DatasetSpec, names: Sequence[str]) -> list[Task]:
    """``Task`` objects for the named tasks of ``dataset``."""
    if not names:
        raise ConfigError(f"no tasks selected; dataset {dataset.name!r} offers {[t.name for t in dataset.tasks]}")
    offered = [t.name for t in dataset.tasks]
    tasks = []
    for name in names:
        if name not in offered:
            raise ConfigError(f"task {name!r}: dataset {dataset.name!r} has no such task; accepted: {', '.join(offered)}")
        spec = dataset.task(name)
        if spec.kind == "tagging" and dataset.input.kind != "text":
            raise ConfigError(f"task {name!r} is a tagging task but dataset {dataset.name!r} has {dataset.input.kind} input")
        tasks.append(
            task_from_spec(
                spec,
                label_smoothing=config["label_smoothing"],
                regression_loss_kind=config["regression_loss"],
                tower=config["tower"],
                dropout=config["dropout"],
                dtype=DTYPES[config["dtype"]],
            )
        )
    return tasks


def build_from_config(
    model_config: Mapping[str, Any], dataset: DatasetSpec, tasks: Sequence[str], rngs: nnx.Rngs
) -> tuple[MultiTaskModel, PyTree]:
    """The pure multi-task model and its ``{"shared", "tasks"}`` params (schema above).

    Raises:
      ConfigError: an unknown key or value, a trunk that does not fit the input kind, a task
        the dataset does not offer.
    """
    config = resolve_config(model_config)
    task_objects = build_tasks(config, dataset, tasks)
    build, options = _architecture(config)
    trunk, feature_dim = build_trunk(config, dataset, rngs)
    keys = keys_for_task_kinds(dataset.task(name).kind for name in tasks)
    return build(trunk, feature_dim, task_objects, keys=keys, rngs=rngs, **options)

"""The run config as typed, frozen dataclasses, with the defaults on the fields.

A run is described by a :class:`RunConfig`. It is parsed once, at the entry point, from the
plain dict of an experiment file plus ``--set`` overrides:

    raw = load_config("experiments/multi_mnist_pcgrad.py")      # get_config() -> dict
    config = RunConfig.from_dict(apply_overrides(resolve(raw), ["steps=200"]))

``resolve`` fills in every default (so ``--set`` can reach every key and the saved
``config.json`` is complete); :meth:`RunConfig.from_dict` checks every key, type, range and
registry name (datasets and their options, aggregator, optimiser, mixing strategy, mode,
model choices, the device count) and raises a one-line :class:`~mtl_jax.errors.ConfigError`
for the first problem. Checks that need the opened dataset or the built objects (task
names, splits, labels, the aggregator's modes and task count) are made by
:class:`mtl_jax.training.experiment.Experiment` before anything is written.

:meth:`RunConfig.to_dict` gives back the resolved dict, in the same JSON shape as the
config files (``config.json``, whose hash names the default run directory).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
from typing import Any, Mapping

from mtl_jax.config import checks
from mtl_jax.config.checks import integer, known_keys, mapping, one_of
from mtl_jax.errors import ConfigError

MAX_SIZE = 2**16  # largest batch size and layer width accepted (larger ones exhaust memory)
REQUIRED = ("dataset", "model", "aggregator", "optimizer", "batch_size", "steps")
NONFINITE = ("skip", "stop")
# Keys added after the first saved format (config.json v1): at their defaults they are left
# out of the run hash, so the default run directory of an older config does not move.
# Section "" holds top-level keys.
ADDED_SINCE_V1 = {
    "": ("augment", "auxiliary_tasks"),
    "model": ("branch_hidden", "branch_nodes", "gumbel_temperature"),
}
MIXING_STRATEGIES = ("proportional", "temperature", "round_robin")  # mtl_jax.data.mix.STRATEGIES
VALIDATION_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """``config["model"]``: trunk, architecture and heads (schema: :mod:`mtl_jax.models.factory`)."""

    trunk: str = "mlp"
    embed_dim: int = 64
    hidden: int = 128
    num_layers: int = 1
    num_heads: int = 4
    mlp_dim: int = 0
    max_length: int = 512
    positions: str = "sinusoidal"
    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1
    groups: int = 8
    cutoff: float = 5.0
    num_rbf: int = 32
    readout: str = "sum"
    set2set_steps: int = 3
    architecture: str = "hard"
    num_experts: int = 4
    expert_hidden: tuple[int, ...] = (64,)
    top_k: int = 2
    num_shared_experts: int = 2
    num_task_experts: int = 1
    levels: int = 2
    column_hidden: tuple[int, ...] = (64, 64)
    attention_levels: int = 2
    attention_width: int = 64
    branch_hidden: tuple[int, ...] = (64, 64)
    branch_nodes: int = 0
    gumbel_temperature: float = 1.0
    tower: tuple[int, ...] = ()
    dropout: float = 0.0
    word_dropout: float = 0.0
    label_smoothing: float = 0.0
    regression_loss: str = "mse"
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: tuples as lists."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


# Sizes that must be at least 1 (the others may be 0: mlp_dim 0 = 4·hidden, num_layers 0 = 1).
POSITIVE_MODEL_SIZES = (
    "embed_dim", "hidden", "num_heads", "max_length", "num_experts", "top_k", "num_shared_experts",
    "num_task_experts", "levels", "attention_levels", "attention_width",
)
RATES = ("dropout", "word_dropout", "label_smoothing")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """``config["optimizer"]``: an optax optimiser by name, its learning rate and other
    keyword arguments (``{"name": "adamw", "learning_rate": 3e-3, "weight_decay": 1e-4}``)."""

    name: str
    learning_rate: float
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate, **copy.deepcopy(dict(self.options))}


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """``config["checkpoint"]``: save every ``every`` steps, keep the last ``keep`` (plus the best)."""

    every: int = 100
    keep: int = 3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MixingConfig:
    """``config["mixing"]``: how batches are drawn when ``dataset`` lists several
    (:mod:`mtl_jax.data.mix`)."""

    strategy: str = "proportional"
    temperature: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run. Keys of the config files are the field names; nested dicts are the
    nested configs. The ``*_options`` and ``baselines`` fields are plain dicts (their keys
    depend on the dataset or method): treat them as read-only.

    Attributes:
      dataset: a dataset name, or a tuple of 2+ names mixed by ``mixing``.
      model: trunk, architecture and heads.
      aggregator: aggregation method, a name of ``mtl_jax.aggregators.REGISTRY``.
      optimizer: optax optimiser.
      batch_size: global batch size (a multiple of the device count).
      steps: train steps.
      dataset_options: builder options (one dataset), or ``{name: options}`` (mixed);
        ``validation_fraction`` carves a validation split out of train where there is none.
      mixing: strategy and temperature of mixed datasets.
      tasks: tasks to train (empty: every task of the dataset).
      aggregator_options: keyword arguments of the aggregator's factory.
      mode: ``"full"``, ``"representation"`` or ``"instance"`` (``mtl_jax.surgery.step.MODES``).
      eval_batch_size: evaluation batch size (a multiple of the device count).
      seed: parameters, batches and the step's randomness.
      log_every: train metrics every so many steps (and at the first and last).
      eval_every: validation every so many steps (0: only at the end).
      eval_split, test_split: splits evaluated during and after training.
      best_metric: ``<task>/<metric>`` or ``mean/<metric>`` that picks the best checkpoint.
      checkpoint: checkpoint interval and how many are kept.
      nonfinite: ``"skip"`` updates with a NaN/Inf gradient, or ``"stop"`` the run.
      baselines: ``{task: run dir of a single-task run}``, for Δm%.
      gradient_stats: log gradient norms, cosines and conflicts; "per_layer" also per top-level
        module of the shared trunk (full mode).
      jacobian_chunk: task cotangents back-propagated at once (0: all).
      augment: train-batch augmentations by name (:mod:`mtl_jax.data.augment`; empty: none),
        e.g. ``{"shift": 2, "crop": 0.8}``; never applied to evaluation batches.
      auxiliary_tasks: tasks that are trained and take part in the surgery but are left out
        of ``mean/<metric>`` and Δm%; PCD's primary tasks are the others.
    """

    dataset: str | tuple[str, ...]
    model: ModelConfig
    aggregator: str
    optimizer: OptimizerConfig
    batch_size: int
    steps: int
    dataset_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mixing: MixingConfig = MixingConfig()
    tasks: tuple[str, ...] = ()
    aggregator_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mode: str = "full"
    eval_batch_size: int = 256
    seed: int = 0
    log_every: int = 20
    eval_every: int = 0
    eval_split: str = "validation"
    test_split: str = "test"
    best_metric: str = "mean/loss"
    checkpoint: CheckpointConfig = CheckpointConfig()
    nonfinite: str = "skip"
    baselines: Mapping[str, str] = dataclasses.field(default_factory=dict)
    gradient_stats: bool | str = True
    jacobian_chunk: int = 0
    augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    auxiliary_tasks: tuple[str, ...] = ()

    # ------------------------------------------------------------------ views

    @property
    def dataset_names(self) -> tuple[str, ...]:
        return (self.dataset,) if isinstance(self.dataset, str) else tuple(self.dataset)

    @property
    def is_mixed(self) -> bool:
        return not isinstance(self.dataset, str)

    def options_of(self, dataset: str) -> dict[str, Any]:
        """The builder options of ``dataset`` (without ``validation_fraction``)."""
        options = self.dataset_options if not self.is_mixed else self.dataset_options.get(dataset, {})
        return {k: v for k, v in options.items() if k != "validation_fraction"}

    def validation_fraction(self, dataset: str) -> float:
        options = self.dataset_options if not self.is_mixed else self.dataset_options.get(dataset, {})
        return options.get("validation_fraction", VALIDATION_FRACTION)

    # ------------------------------------------------------------------ dict form

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON values (the shape of ``config.json``)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_dict() if hasattr(value, "to_dict") else _plain(value)
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, num_devices: int | None = None) -> RunConfig:
        """Parse and check a config dict (defaults are filled in first, see :func:`resolve`).

        ``num_devices``: the batch sizes must divide by it (default: ``jax.device_count()``).
        Raises ConfigError naming the first problem and its fix.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"a run config must be a dict, got {type(config).__name__}")
        config = resolve(config)
        known_keys("", config, [f.name for f in dataclasses.fields(cls)])
        missing = [key for key in REQUIRED if key not in config]
        if missing:
            raise ConfigError(f"config misses the required keys {missing}; required: {', '.join(REQUIRED)}")
        parsed = cls(
            dataset=_dataset(config["dataset"]),
            model=_model(config["model"]),
            aggregator=_aggregator(config["aggregator"]),
            optimizer=_optimizer(config["optimizer"]),
            batch_size=integer("batch_size", config["batch_size"], low=1, high=MAX_SIZE),
            steps=integer("steps", config["steps"], low=1),
            dataset_options=copy.deepcopy(mapping("dataset_options", config["dataset_options"])),
            mixing=_mixing(config["mixing"]),
            tasks=_tasks(config["tasks"]),
            aggregator_options=copy.deepcopy(mapping("aggregator_options", config["aggregator_options"])),
            mode=_mode(config["mode"]),
            eval_batch_size=integer("eval_batch_size", config["eval_batch_size"], low=1, high=MAX_SIZE),
            seed=integer("seed", config["seed"], low=0),
            log_every=integer("log_every", config["log_every"], low=1),
            eval_every=integer("eval_every", config["eval_every"], low=0),
            eval_split=checks.string("eval_split", config["eval_split"]),
            test_split=checks.string("test_split", config["test_split"]),
            best_metric=_best_metric(config["best_metric"]),
            checkpoint=_checkpoint(config["checkpoint"]),
            nonfinite=one_of("nonfinite", config["nonfinite"], NONFINITE),
            baselines=_baselines(config["baselines"]),
            gradient_stats=gradient_stats_value(config["gradient_stats"]),
            jacobian_chunk=integer("jacobian_chunk", config["jacobian_chunk"], low=0),
            augment=_augment(config["augment"]),
            auxiliary_tasks=_auxiliary_tasks(config["auxiliary_tasks"], config["tasks"]),
        )
        _check_dataset_options(parsed)
        _check_devices(parsed, num_devices)
        return parsed


def hashed_form(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config dict as it is hashed for the default run directory: keys of
    :data:`ADDED_SINCE_V1` left out where they hold their defaults."""
    defaults = {"": _defaults(), "model": ModelConfig().to_dict()}
    out = copy.deepcopy(dict(config))
    for section, keys in ADDED_SINCE_V1.items():
        node = out if section == "" else out.get(section)
        if isinstance(node, dict):
            for key in keys:
                if key in node and node[key] == defaults[section][key]:
                    del node[key]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _defaults() -> dict[str, Any]:
    """The default of every optional key, in dict form."""
    out = {}
    for field in dataclasses.fields(RunConfig):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        out[field.name] = value.to_dict() if hasattr(value, "to_dict") else _plain(value)
    return out


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every default filled in: ``mixing`` and ``checkpoint`` are merged with
    their defaults, ``model`` with :class:`ModelConfig`'s; other values are taken as given."""
    resolved = _defaults()
    for key, value in config.items():
        default = resolved.get(key)
        if isinstance(value, dict) and isinstance(default, dict) and default:
            resolved[key] = {**default, **copy.deepcopy(value)}
        else:
            resolved[key] = copy.deepcopy(value)
    if isinstance(resolved.get("model"), dict):
        resolved["model"] = {**ModelConfig().to_dict(), **resolved["model"]}
    return resolved


# --------------------------------------------------------------------------- per key


def _dataset(value: Any) -> str | tuple[str, ...]:
    """One name, or a list of distinct names (mixed)."""
    from mtl_jax.data.datasets import DATASETS  # noqa: PLC0415 - the data registry (TFDS) loads on demand

    if isinstance(value, str):
        return one_of("dataset", value, DATASETS)
    if not isinstance(value, (list, tuple)) or len(value) < 2 or len(set(map(str, value))) != len(value):
        raise ConfigError(f"config key 'dataset' must be a name or a list of 2+ distinct names, got {value!r}")
    return tuple(one_of("dataset", name, DATASETS) for name in value)


def _model(value: Any) -> ModelConfig:
    from mtl_jax.models.factory import CHOICES  # noqa: PLC0415

    mapping("model", value)
    defaults = ModelConfig()
    accepted = [f.name for f in dataclasses.fields(ModelConfig)]
    for key in sorted(set(value) - set(accepted)):
        close = checks.hint(key, accepted)
        raise ConfigError(f"model.{key}: unknown key{close} Accepted keys: {', '.join(sorted(accepted))}")
    fields = {}
    for key in accepted:
        default, given = getattr(defaults, key), value.get(key, getattr(defaults, key))
        fields[key] = _model_value(key, given, default, CHOICES)
    return ModelConfig(**fields)


def _model_value(key: str, value: Any, default: Any, choices: Mapping[str, tuple[str, ...]]) -> Any:
    if key in choices:
        if value not in choices[key]:
            raise ConfigError(f"model.{key}: unknown value {value!r}; accepted values: {', '.join(choices[key])}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE for v in value
        ):
            raise ConfigError(f"model.{key}: expected a tuple of positive ints up to {MAX_SIZE} (like {default!r}), got {value!r}")
        return tuple(value)
    if isinstance(default, float):
        if not _finite_number(value):
            raise ConfigError(f"model.{key}: expected a finite number (like {default!r}), got {value!r}")
        if key in RATES and not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{key}: expected a rate in [0, 1), got {value!r}")
        if key not in RATES and value <= 0:
            raise ConfigError(f"model.{key}: expected a positive number (like {default!r}), got {value!r}")
        return value
    low = 1 if key in POSITIVE_MODEL_SIZES else 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SIZE:
        kind = "a positive int" if low else "a non-negative int"
        raise ConfigError(f"model.{key}: expected {kind} up to {MAX_SIZE} (like {default!r}), got {value!r}")
    return value


def _aggregator(value: Any) -> str:
    from mtl_jax.aggregators import REGISTRY  # noqa: PLC0415

    return one_of("aggregator", value, REGISTRY)


def _optimizer(value: Any) -> OptimizerConfig:
    from mtl_jax.training.optimizers import OPTIMIZERS  # noqa: PLC0415 - the optax table

    mapping("optimizer", value)
    options = dict(value)
    name = one_of("optimizer.name", options.pop("name", None), OPTIMIZERS)
    accepted = list(inspect.signature(OPTIMIZERS[name]).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"config key 'optimizer': {name} does not accept {unknown}; accepted: {', '.join(accepted)}")
    for key, option in options.items():
        if key != "learning_rate" and not (option is None or isinstance(option, bool) or _finite_number(option)):
            raise ConfigError(f"config key 'optimizer.{key}' must be a finite number, True/False or None, got {option!r}")
    if "learning_rate" not in options:
        raise ConfigError(f"config key 'optimizer' has no learning_rate; add e.g. optimizer={{'name': {name!r}, 'learning_rate': 1e-3}}")
    rate = options.pop("learning_rate")
    checks.positive_number("optimizer.learning_rate", rate)
    return OptimizerConfig(name, rate, copy.deepcopy(options))


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mixing(value: Any) -> MixingConfig:
    mapping("mixing", value)
    if set(value) != {"strategy", "temperature"}:
        raise ConfigError(f"config key 'mixing' must have exactly the keys strategy, temperature; got {sorted(value)}")
    strategy = one_of("mixing.strategy", value["strategy"], MIXING_STRATEGIES)
    return MixingConfig(strategy, checks.positive_number("mixing.temperature", value["temperature"]))


def _tasks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise ConfigError(f"config key 'tasks' must be a list of task names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"config key 'tasks' lists a task twice: {list(value)}")
    return tuple(value)


def _augment(value: Any) -> dict[str, Any]:
    """``augment``: a dict of augmentation names (values and the fit to the dataset are
    checked by :func:`mtl_jax.data.augment.make_augmentation` once the data is open)."""
    from mtl_jax.data.augment import OPTIONS  # noqa: PLC0415 - imports JAX

    mapping("augment", value)
    for name in value:
        if name not in OPTIONS:
            raise ConfigError(
                f"augment.{name}: unknown augmentation{checks.hint(name, OPTIONS)} Accepted: {', '.join(OPTIONS)}"
            )
    return copy.deepcopy(dict(value))


def _auxiliary_tasks(value: Any, tasks: Any) -> tuple[str, ...]:
    """``auxiliary_tasks``: distinct names among ``tasks`` (when given), not all of them."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise ConfigError(f"config key 'auxiliary_tasks' must be a list of task names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"config key 'auxiliary_tasks' lists a task twice: {list(value)}")
    if tasks:
        for name in value:
            one_of("auxiliary_tasks", name, tasks)
        if set(value) == set(tasks):
            raise ConfigError(
                f"config key 'auxiliary_tasks' names every task {list(tasks)}; leave at least one"
                " primary task (the run is judged by the primary ones)"
            )
    return tuple(value)


def _mode(value: Any) -> str:
    from mtl_jax.surgery.step import MODES  # noqa: PLC0415

    return one_of("mode", value, MODES)


def _best_metric(value: Any) -> str:
    checks.string("best_metric", value)
    task, sep, metric = value.partition("/")
    if not sep or not task or not metric:
        raise ConfigError(
            f"config key 'best_metric' is {value!r}; expected '<task>/<metric>' or"
            " 'mean/<metric>', e.g. 'mean/loss' or 'mean/accuracy'"
        )
    return value


def _checkpoint(value: Any) -> CheckpointConfig:
    mapping("checkpoint", value)
    known_keys("checkpoint", value, ("every", "keep"))
    return CheckpointConfig(
        every=integer("checkpoint.every", value["every"], low=1),
        keep=integer("checkpoint.keep", value["keep"], low=1),
    )


def _baselines(value: Any) -> dict[str, str]:
    mapping("baselines", value)
    for task, run_dir in value.items():
        if not isinstance(task, str) or not isinstance(run_dir, str):
            raise ConfigError(f"config key 'baselines' maps task names to run directories, got {task!r}: {run_dir!r}")
    return dict(value)


def _check_dataset_options(config: RunConfig) -> None:
    """Options per dataset: builder fields, text options and ``validation_fraction``."""
    from mtl_jax.data.datasets import accepted_options  # noqa: PLC0415

    options = config.dataset_options
    if config.is_mixed:
        unknown = sorted(set(options) - set(config.dataset_names))
        if unknown:
            raise ConfigError(
                f"config key 'dataset_options' names {unknown}, not among the mixed datasets;"
                f" with several datasets it maps each of {list(config.dataset_names)} to its options"
            )
    for name in config.dataset_names:
        key = f"dataset_options.{name}" if config.is_mixed else "dataset_options"
        given = mapping(key, options.get(name, {}) if config.is_mixed else options)
        accepted = [*accepted_options(name), "validation_fraction"]
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise ConfigError(f"config key {key!r} for {name}: unknown options {unknown}; accepted: {', '.join(sorted(accepted))}")
        fraction = given.get("validation_fraction", VALIDATION_FRACTION)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise ConfigError(f"config key '{key}.validation_fraction' must be in (0, 1), got {fraction!r}")
        for option, value in given.items():
            if option != "validation_fraction":
                _check_dataset_option(f"{key}.{option}", option, value)


def _check_dataset_option(key: str, option: str, value: Any) -> None:
    """Builder options are integers (``seed`` >= 0; sizes, ``limit`` and ``min_count`` >= 1;
    ``limit`` may be None); ``lowercase`` is True or False."""
    if option == "lowercase":
        checks.boolean(key, value)
    elif not (option == "limit" and value is None):
        low = 0 if option == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= checks.MAX_INT:
            allowed = "or None " if option == "limit" else ""
            raise ConfigError(f"config key {key!r} is {value!r}; expected an integer in [{low}, {checks.MAX_INT}] {allowed}".rstrip())


def _check_devices(config: RunConfig, num_devices: int | None) -> None:
    if num_devices is None:
        import jax  # noqa: PLC0415

        num_devices = jax.device_count()
    for key in ("batch_size", "eval_batch_size"):
        value = getattr(config, key)
        if value % num_devices:
            lower = value - value % num_devices
            raise ConfigError(
                f"config key {key!r} is {value}, not divisible by the {num_devices} devices;"
                f" use a multiple of {num_devices} (e.g. {lower or num_devices} or {lower + num_devices})"
            )


def gradient_stats_value(value: Any) -> bool | str:
    """``gradient_stats``: True, False or "per_layer"."""
    if value == "per_layer" or isinstance(value, bool):
        return value
    raise ConfigError(f"config key 'gradient_stats' must be True, False or 'per_layer', got {value!r}")

"""What tuning needs from the rest of mtl_jax: experiment files, run-config checks, training.

The one place ``mtl_jax.tuning`` touches ``mtl_jax.config``, ``mtl_jax.aggregators`` and
``mtl_jax.training``: everything else in the package works on plain config dicts.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mtl_jax.errors import ConfigError
from mtl_jax.tuning import space as space_lib
from mtl_jax.tuning.default_space import default_space

COUPLED = ("aggregator", "mode")  # keys whose values must fit each other, checked pairwise


def resolved_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The experiment file's ``get_config()`` with every default and the ``--set`` overrides."""
    from mtl_jax.config import apply_overrides, load_config, resolve  # noqa: PLC0415

    return apply_overrides(resolve(load_config(path)), list(overrides))


def declared_space(path: str | Path) -> Any | None:
    """The experiment file's ``get_sweep()``, or None when it defines none."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"mtl_jax_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ConfigError(f"config file {str(path)!r} failed to load: {type(error).__name__}: {error}") from error
    get_sweep = getattr(module, "get_sweep", None)
    if get_sweep is None:
        return None
    try:
        return get_sweep()
    except Exception as error:
        raise ConfigError(f"config file {str(path)!r}: get_sweep() raised {type(error).__name__}: {error}") from error


def device_count() -> int:
    import jax  # noqa: PLC0415

    return jax.device_count()


def method_modes(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """{aggregator: the train-step modes it supports} for the registered ``names``."""
    from mtl_jax.aggregators import REGISTRY, get_aggregator  # noqa: PLC0415

    modes = {}
    for name in names:
        if name in REGISTRY:
            try:
                modes[name] = tuple(get_aggregator(name).modes)
            except ConfigError:  # a method with a required option: assume both modes
                modes[name] = ("full", "representation")
    return modes


def option_defaults(methods: Iterable[str]) -> dict[str, Any]:
    """{aggregator_options.<name>: default} over the factories of ``methods``."""
    from mtl_jax.aggregators import REGISTRY  # noqa: PLC0415

    defaults = {}
    for method in methods:
        if method in REGISTRY:
            for name, parameter in inspect.signature(REGISTRY[method][0]).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults.setdefault(f"aggregator_options.{name}", parameter.default)
    return defaults


def check_run_config(config: Mapping[str, Any], num_devices: int | None = None) -> None:
    """ConfigError for the first problem of ``config``: the run config's own checks, the
    aggregator and its options, and whether it supports the mode."""
    from mtl_jax.aggregators import get_aggregator  # noqa: PLC0415
    from mtl_jax.config import RunConfig  # noqa: PLC0415

    parsed = RunConfig.from_dict(dict(config), num_devices=num_devices)
    aggregator = get_aggregator(parsed.aggregator, **dict(parsed.aggregator_options))
    if parsed.mode not in aggregator.modes:
        raise ConfigError(
            f"aggregator {parsed.aggregator!r} supports only mode {', '.join(aggregator.modes)}, not {parsed.mode!r}"
        )


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any] | None:
    if any(key in a and a[key] != value for key, value in b.items()):
        return None  # different branches: never drawn together
    return {**a, **b}


def _aggregators_in(space: Mapping[str, Any], config: Mapping[str, Any]) -> set[str]:
    names = {config["aggregator"]}
    for key, dist, _ in space_lib.iter_keys(space):
        if key == "aggregator" and isinstance(dist, space_lib.Choice):
            names |= {v for v in dist.values if isinstance(v, str)}
    return names


def checked_space(declared: Any, config: Mapping[str, Any], num_devices: int | None = None) -> dict[str, Any]:
    """The space to search: ``declared`` (from ``get_sweep()``) or the default one, checked
    against ``config``: shape, keys, types, and the run-config checks at every corner (and
    every pair of corners of the coupled keys aggregator and mode), the other top-level keys
    at their first value. ConfigError otherwise."""
    num_devices = num_devices or device_count()
    if declared is None:
        from mtl_jax.tuning.default_space import METHODS  # noqa: PLC0415

        declared = default_space(config, num_devices=num_devices, method_modes=method_modes([config["aggregator"], *METHODS]))
    space_lib.check_shape(declared)
    space_lib.check_types(declared, config, option_defaults(_aggregators_in(declared, config)))
    corners = list(space_lib.corner_assignments(declared))
    coupled = [c for c in corners if set(c) & set(COUPLED)]
    pairs = filter(None, (_merge(a, b) for a, b in itertools.combinations(coupled, 2)))
    # top-level keys are drawn in every trial, so the point checked is the space's first
    # point with one key (or one coupled pair) moved to a corner, never the base config's value
    reference = {key: dist.corners()[0] for key, dist in declared.items()}
    for assignment in itertools.chain(corners, pairs):
        try:
            check_run_config(space_lib.apply(config, {**reference, **assignment}), num_devices)
        except ConfigError as error:
            drawn = ", ".join(f"{k}={v!r}" for k, v in assignment.items())
            raise ConfigError(f"sweep space: the config with {drawn} is refused: {' '.join(str(error).split())}") from error
    return dict(declared)


def check_objective(config: Mapping[str, Any]) -> None:
    """The objective is read on the evaluation split: it must not be the test split."""
    if config["eval_split"] == config["test_split"]:
        raise ConfigError(
            f"config key 'eval_split' is {config['eval_split']!r}, the test split: a sweep must not select on test;"
            " set eval_split to a validation split"
        )


def higher_is_better(config: Mapping[str, Any]) -> bool:
    from mtl_jax.evaluation.directions import higher_is_better as better  # noqa: PLC0415

    return better(config["best_metric"].partition("/")[2])


def prepare_data(config: Mapping[str, Any]) -> None:
    """Prepare the dataset once (before worker processes open it concurrently)."""
    from mtl_jax.config import RunConfig  # noqa: PLC0415
    from mtl_jax.training import data_source  # noqa: PLC0415

    data_source.open_data(RunConfig.from_dict(dict(config)))


def train_run(config: Mapping[str, Any], workdir: str | Path, hooks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train (or resume) the ordinary run directory ``workdir``; its results dict."""
    from mtl_jax.training.loop import train  # noqa: PLC0415

    return train(dict(config), workdir=workdir, progress=False, json_log=False, hooks=tuple(hooks))


def task_metrics(config: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """{task: the metrics Δm% compares} for the config's tasks (opens, and prepares, the data)."""
    from mtl_jax.config import RunConfig  # noqa: PLC0415
    from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND  # noqa: PLC0415
    from mtl_jax.training import data_source  # noqa: PLC0415

    parsed = RunConfig.from_dict(dict(config))
    data = data_source.open_data(parsed)
    return {spec.name: METRICS_BY_KIND[spec.kind] for spec in data_source.select_tasks(parsed, data.spec, data.splits)}


def metric_direction(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better."""
    from mtl_jax.evaluation.directions import higher_is_better as better  # noqa: PLC0415

    return better(name)


def normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as its run directory's ``config.json`` holds it."""
    from mtl_jax.config import RunConfig  # noqa: PLC0415

    return RunConfig.from_dict(dict(config)).to_dict()


PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"


def parent_process_allocates_lazily() -> bool:
    """Make this (parent) process allocate accelerator memory on demand instead of taking
    75 % of it at the first device query, so the worker processes it starts find the memory
    free. Call before JAX's backend starts; True when it set the variable (undo it for the
    children with :func:`children_env`)."""
    import os  # noqa: PLC0415

    if PREALLOCATE in os.environ:
        return False
    os.environ[PREALLOCATE] = "false"
    return True


def children_env(set_here: bool, workers: int) -> dict[str, str]:
    """The environment of K worker processes: this process's, without the lazy allocation
    it set for itself, and with ``XLA_PYTHON_CLIENT_MEM_FRACTION = 0.9 / K`` (unless set)."""
    import os  # noqa: PLC0415

    env = dict(os.environ)
    if set_here:
        env.pop(PREALLOCATE, None)
    if workers > 1 and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / workers:.3f}"
    return env

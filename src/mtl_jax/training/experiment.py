"""An :class:`Experiment`: everything a run needs, built once from a :class:`RunConfig`.

    experiment = Experiment.from_config(config)          # every check, nothing written
    state = experiment.initial_state()
    batches = experiment.train_batches()
    state, metrics = experiment.step(state, next(batches))
    results = experiment.evaluate(state.params, "validation")

It holds the mesh, the opened data, the task specs, the model and its initial parameters,
the (non-finite-guarded) optimiser and aggregator, the compiled-on-first-call train step
and the evaluator (a function of parameters and a split, never the trainer). ``train``,
``eval``, ``export`` and ``sweep`` all start from one. Building it runs every check that
needs the data or the built objects (tasks, splits, baselines, labels against the heads,
the aggregator against the mode and the task count, the optimiser's options); none writes
to disk, so a bad config is refused before a run directory is touched.

Tests inject pieces instead of patching modules: ``Experiment.from_config(config,
data=my_dataset, build_model=my_builder)``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from mtl_jax.aggregators import Aggregator, MetaWeighting, get_aggregator, initial_state
from mtl_jax.config import ModelConfig, RunConfig
from mtl_jax.data.augment import make_augmentation
from mtl_jax.data.augmented import AugmentedBatches, CompiledAugmentation, compile_augmentation
from mtl_jax.data.meta import MetaBatches, meta_seed
from mtl_jax.data.opened import Dataset, ResumableBatches
from mtl_jax.data.spec import DatasetSpec, TaskSpec
from mtl_jax.errors import ConfigError, DataError
from mtl_jax.evaluation import delta_m, evaluate, make_evaluator
from mtl_jax.evaluation.task_metrics import METRICS_BY_KIND
from mtl_jax.models.factory import build_from_config
from mtl_jax.models.multitask import MultiTaskModel
from mtl_jax.parallel import data_mesh, replicate
from mtl_jax.surgery.instance import instance_refusal, supported_modes
from mtl_jax.surgery.nonfinite import keep_state_when_nonfinite, skip_nonfinite_updates
from mtl_jax.surgery.state import TrainState, create_train_state
from mtl_jax.surgery.step import TrainStep, make_train_step
from mtl_jax.training import auxiliary, data_source
from mtl_jax.training.checkpoint import Checkpointer, CorruptCheckpointWarning, saved_steps
from mtl_jax.training.optimizers import make_optimizer
from mtl_jax.training.run_dir import CONFIG_FILE, read_saved_config
from mtl_jax.types import PyTree

CHECKPOINTS = "checkpoints"
ModelBuilder = Callable[[ModelConfig, DatasetSpec, Sequence[str], int], tuple[MultiTaskModel, PyTree]]
Which = Literal["best", "latest"]


def build_model(model: ModelConfig, spec: DatasetSpec, task_names: Sequence[str], seed: int) -> tuple[MultiTaskModel, PyTree]:
    """(model, params) for the named tasks of ``spec`` (:func:`mtl_jax.models.factory.build_from_config`)."""
    return build_from_config(model.to_dict(), spec, list(task_names), nnx.Rngs(seed))


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluator:
    """``evaluator(params, split) -> {task: {metric: value}}``: the compiled evaluation over a
    whole split of the data (replicated ``params``)."""

    compiled: Callable
    data: Dataset
    mesh: Mesh
    tasks: Mapping[str, TaskSpec]
    batch_size: int

    def __call__(self, params: PyTree, split: str) -> dict[str, dict[str, float]]:
        batches = self.data.eval_batches(split, batch_size=self.batch_size)
        return evaluate(self.compiled, params, batches, self.mesh, self.tasks)


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """The built pieces of a run (see the module docstring). Frozen; the train state and the
    batch iterator are made per use (:meth:`initial_state`, :meth:`train_batches`).

    Attributes:
      config: the checked run config.
      mesh: the ``data`` mesh over every device.
      data: the opened dataset (single or mixed), read through the :class:`Dataset` protocol.
      tasks: the trained tasks' specs by name, in the model's order.
      model: the pure multi-task model.
      params: the initial parameters (unplaced).
      optimizer: the optax optimiser, wrapped to skip non-finite updates.
      aggregator: the aggregator, wrapped to keep its state on non-finite steps.
      step: the data-parallel train step, ``state, metrics = step(state, batch)``.
      evaluator: ``evaluator(params, split) -> metrics``.
      baselines: single-task test metrics by task, for Δm%.
      augmentation: ``config.augment`` for this dataset at the run's seed, compiled (None: off);
        applied to train batches only.
    """

    config: RunConfig
    mesh: Mesh
    data: Dataset
    tasks: Mapping[str, TaskSpec]
    model: MultiTaskModel
    params: PyTree
    optimizer: optax.GradientTransformation
    aggregator: Aggregator
    step: TrainStep
    evaluator: Evaluator
    baselines: Mapping[str, Mapping[str, float]]
    augmentation: CompiledAugmentation | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_config(
        cls,
        config: RunConfig | Mapping[str, Any],
        *,
        data: Dataset | None = None,
        build_model: ModelBuilder = build_model,
        mesh: Mesh | None = None,
    ) -> Experiment:
        """Build and check everything for ``config`` (a RunConfig, or a config dict, which is
        resolved and checked first). Writes nothing and compiles nothing.

        Args:
          data: an opened dataset to use instead of opening ``config.dataset``.
          build_model: ``(model config, spec, task names, seed) -> (model, params)``.
          mesh: default: every device.

        Raises:
          ConfigError, DataError: the first problem, as one line naming the fix.
        """
        mesh = data_mesh() if mesh is None else mesh
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config, num_devices=mesh.size)
        aggregator = build_aggregator(config)
        optimizer = make_optimizer(config.optimizer)
        data = data_source.open_data(config) if data is None else data
        tasks = data_source.select_tasks(config, data.spec, data.splits)
        auxiliary.check_auxiliary(config, tasks)
        augmentation = make_augmentation(config.augment, data.spec)
        augmentation = None if augmentation is None else compile_augmentation(augmentation, config.seed)
        _check_splits(config, data, tasks)
        baselines = data_source.read_baselines(config)
        names = [task.name for task in tasks]
        model, params = build_model(config.model, data.spec, names, config.seed)
        if config.auxiliary_tasks:  # PCD's primary tasks from the split
            aggregator = build_aggregator(config, auxiliary.aggregator_options(config, names))
        _check_aggregator_fits(config, aggregator, len(names), params)
        optimizer = skip_nonfinite_updates(optimizer)
        aggregator = keep_state_when_nonfinite(aggregator)
        try:
            step = make_train_step(
                model, aggregator, optimizer, mesh, mode=config.mode,
                gradient_stats=config.gradient_stats, jacobian_chunk=config.jacobian_chunk or None,
            )  # fmt: skip
        except ValueError as error:
            raise ConfigError(f"config rejected by the train step: {error}") from error
        specs = {task.name: task for task in tasks}
        evaluator = Evaluator(make_evaluator(model, specs, mesh), data, mesh, specs, config.eval_batch_size)
        return cls(config, mesh, data, specs, model, params, optimizer, aggregator, step, evaluator, baselines,
                   augmentation)  # fmt: skip

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, **inject: Any) -> Experiment:
        """The experiment of a run directory made by ``mtl-jax train`` (its ``config.json``).
        ``inject``: as :meth:`from_config`. Reads only."""
        run_dir = Path(run_dir)
        saved = read_saved_config(run_dir) if run_dir.is_dir() else None
        if saved is None:
            raise ConfigError(
                f"--workdir {str(run_dir)!r} holds no {CONFIG_FILE}; pass the directory of a run made by `mtl-jax train`"
            )
        mesh = inject.pop("mesh", None) or data_mesh()
        try:
            config = RunConfig.from_dict(saved, num_devices=mesh.size)
        except ConfigError as error:
            raise ConfigError(
                f"{run_dir / CONFIG_FILE} is not a valid config for this version ({error}); retrain the run"
                " with `mtl-jax train --overwrite`"
            ) from error
        return cls.from_config(config, mesh=mesh, **inject)

    # ------------------------------------------------------------------ views

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self.tasks)

    def initial_state(self) -> TrainState:
        """A fresh train state at step 0 (unplaced; :func:`mtl_jax.parallel.replicate` it)."""
        return create_train_state(self.params, self.optimizer, self.aggregator, len(self.tasks), self.config.seed)

    def train_batches(self) -> ResumableBatches:
        """The resumable stream of train batches (this process's slices), augmented by
        ``config.augment`` (:mod:`mtl_jax.data.augmented`); for a meta weighting each batch also
        carries a meta batch of the training split in its own order (:mod:`mtl_jax.data.meta`)."""
        batches = self.data.train_batches("train", batch_size=self.config.batch_size, seed=self.config.seed)
        if self.augmentation is not None:
            batches = AugmentedBatches(batches, self.augmentation, jax.process_index())
        if isinstance(self.aggregator, MetaWeighting):  # each batch also carries a meta batch
            meta = self.data.train_batches("train", batch_size=self.config.batch_size, seed=meta_seed(self.config.seed))
            batches = MetaBatches(batches, meta)
        return batches

    def evaluate(self, params: PyTree, split: str) -> dict[str, dict[str, float]]:
        """Metrics of (replicated) ``params`` on ``split``."""
        return self.evaluator(params, split)

    def delta_m(self, test: Mapping[str, Mapping[str, float]]) -> float | None:
        """Δm% of ``test`` against the baselines (None without baselines)."""
        if not self.baselines:
            return None
        metrics = {name: METRICS_BY_KIND[spec.kind] for name, spec in self.tasks.items()}
        return delta_m(test, self.baselines, metrics, exclude=self.config.auxiliary_tasks)

    def trace(self, state: TrainState, batch: Mapping[str, Any]) -> None:
        """Trace (not compile) the train step and the evaluator on ``state`` (replicated) and a
        host ``batch``, so a config the step cannot run is refused before anything is written.
        The traces are cached: the first real step does not trace again."""
        placed = self.step.place_batch(batch)
        try:
            jax.eval_shape(self.step.jitted, state, placed)
            jax.eval_shape(self.evaluator.compiled, state.params, placed)
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"the train step cannot run this config ({type(error).__name__}: {' '.join(str(error).split())[:300]});"
                " check model, aggregator_options and the dataset's inputs"
            ) from error

    # ------------------------------------------------------------------ checkpoints

    def restore(self, run_dir: str | Path, which: Which = "best") -> tuple[int, TrainState]:
        """(step, replicated state) of the run's best (by the validation metric) or latest
        readable checkpoint. Reads only: never creates ``checkpoints/``.

        Raises:
          DataError: no checkpoint, or none readable by this config's model.
        """
        step, state, _ = self.restore_with_extra(run_dir, which)
        return step, replicate(state, self.mesh)

    def restore_with_extra(self, run_dir: str | Path, which: Which = "latest") -> tuple[int, TrainState, dict]:
        """(step, unplaced state, extra JSON) of the best or latest readable checkpoint."""
        directory = Path(run_dir) / CHECKPOINTS
        if not saved_steps(directory):
            raise DataError(
                f"{directory} holds no checkpoint; train the run first (`mtl-jax train` with its config"
                f" and --workdir {str(run_dir)!r})"
            )
        checkpointer = Checkpointer(directory, keep=self.config.checkpoint.keep, read_only=True)
        try:
            like = self.initial_state()
            best = _best_step(checkpointer) if which == "best" else None
            if best is not None:
                try:
                    state, extra = checkpointer.restore(best, like)
                    return best, state, extra
                except Exception as error:  # noqa: BLE001 - unreadable: the latest readable one instead
                    warnings.warn(
                        f"the best checkpoint (step {best}) is unreadable ({type(error).__name__}); using the latest readable one",
                        CorruptCheckpointWarning, stacklevel=2,
                    )  # fmt: skip
            restored = checkpointer.restore_latest(like)
            if restored is None:
                raise DataError(
                    f"no checkpoint in {directory} can be restored for this config's model and method"
                    f" (step {checkpointer.failures[0][0]}: {checkpointer.failures[0][1][:160]}); if another"
                    " version wrote them, retrain the run with `mtl-jax train --overwrite`"
                )
            step, state, extra = restored
        finally:
            checkpointer.close()
        return int(step), state, extra


def build_aggregator(config: RunConfig, options: Mapping[str, Any] | None = None) -> Aggregator:
    """The configured aggregator (``get_aggregator(name, **options)``; default options:
    ``config.aggregator_options``), if it supports the configured mode; else a one-line
    ConfigError. No data needed (sweeps check spaces with it)."""
    options = config.aggregator_options if options is None else options
    aggregator = get_aggregator(config.aggregator, **options)
    if config.mode == "instance" and instance_refusal(aggregator):
        raise ConfigError(
            f"config key 'mode' is 'instance', but aggregator {config.aggregator!r} cannot run in it:"
            f" {instance_refusal(aggregator)}; use --set mode='representation' or a stateless Gramian"
            " weighting such as 'upgrad', 'mgda' or 'pcgrad'"
        )
    supported = supported_modes(aggregator)
    if config.mode not in supported:
        raise ConfigError(
            f"config key 'mode' is {config.mode!r}, but aggregator {config.aggregator!r} supports only"
            f" {', '.join(supported)} (see its module docstring for why); use --set mode={supported[0]!r}"
            " or another aggregator"
        )
    return aggregator


def _best_step(checkpointer: Checkpointer) -> int | None:
    """The best step recorded by the newest checkpoint whose extra reads, if still kept."""
    steps = checkpointer.steps()
    for step in reversed(steps):
        try:
            best = checkpointer.restore_extra(step).get("best", {}).get("step")
        except Exception:  # noqa: BLE001 - an unreadable extra: ask the previous checkpoint
            continue
        return best if best in steps else None
    return None


def _check_splits(config: RunConfig, data: Dataset, tasks: Sequence[TaskSpec]) -> None:
    """Every split the run reads (train, eval_split, test_split) is read in full, and every
    batch of it fits the heads, before step 1: a corrupt file of the test split is a DataError
    now, not after training. Each split is collated once (:mod:`mtl_jax.data.columns`), so the
    run's later batches are array indexing of what was checked here."""
    for split in dict.fromkeys(("train", config.eval_split, config.test_split)):
        empty = True
        for batch in data.eval_batches(split, batch_size=config.eval_batch_size):
            data_source.check_labels_fit(batch, tasks)
            empty = False
        if empty:
            raise DataError(f"split {split!r} of {data.spec.name} is empty; choose another eval_split or test_split")


def _check_aggregator_fits(config: RunConfig, aggregator: Aggregator, num_tasks: int, params: PyTree) -> None:
    """The aggregator's state can be made for ``num_tasks`` tasks and these parameters."""
    try:
        initial_state(aggregator, num_tasks, params["shared"])
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"aggregator {config.aggregator!r} with options {dict(config.aggregator_options)} does not fit"
            f" {num_tasks} tasks: {' '.join(str(error).split())}; change aggregator_options, the tasks, or the aggregator"
        ) from error


"""The loop's periodic work, one small hook each: the loop is "step, then each hook".

    for hook in hooks: hook.start(step, state)
    while step < last and no hook asks to stop:
        state, metrics = train_step(state, next(batches)); step += 1
        for hook in hooks: hook.after_step(step, state, metrics)
    for hook in hooks: hook.end(step, state, stopped=...)
    for hook in hooks: hook.close()        # always, also after an error

A hook asks the loop to stop by setting ``stop_reason`` (SIGTERM: ``"preempted"``; a tuning
hook: e.g. ``"pruned"``); the loop then saves a checkpoint and returns. :class:`Evaluation`
passes each validation result to its ``listeners`` (``after_eval``): the checkpoint saver
keeps the best one, and a tuning hook can ``report`` it and decide to prune.

Hooks read the state and the metrics, never change them, and share nothing but what they
are given at construction.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np
from tqdm import tqdm

from mtl_jax.evaluation import BestTracker
from mtl_jax.surgery.nonfinite import skipped_updates
from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.logging_sinks import MetricsLogger, eval_scalars, step_scalars

Metrics = Mapping[str, Any]
Results = dict[str, dict[str, float]]


class NonFiniteLossError(RuntimeError):
    """A task loss became NaN or Inf and the config says ``nonfinite: "stop"``."""


class EvalResult(NamedTuple):
    """One validation: ``metrics`` of ``split`` at ``step``; ``value`` of the best-so-far
    metric, whether it ``improved``, and its orbax ``score`` (larger is better)."""

    step: int
    split: str
    metrics: Results
    value: float
    improved: bool
    score: float


class Hook:
    """Base hook: every method is a no-op; ``stop_reason`` None means "go on"."""

    stop_reason: str | None = None

    def start(self, step: int, state: Any) -> None:
        """Before the first step of this session (``step``: the restored step, or 0)."""

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        """After train step ``step`` (1-based): ``state`` and device ``metrics`` are its outputs."""

    def after_eval(self, step: int, state: Any, result: EvalResult) -> None:
        """After a validation (for listeners of :class:`Evaluation`)."""

    def end(self, step: int, state: Any, *, stopped: bool) -> None:
        """After the last step; ``stopped``: a hook ended the run early."""

    def close(self) -> None:
        """Release resources; called once, also after an error."""


def run_hooks(hooks: Sequence[Hook], method: str, *args: Any, **kwargs: Any) -> None:
    for hook in hooks:
        getattr(hook, method)(*args, **kwargs)


def stop_reason(hooks: Sequence[Hook]) -> str | None:
    """The first stop request of ``hooks``, or None."""
    return next((hook.stop_reason for hook in hooks if hook.stop_reason), None)


# --------------------------------------------------------------------------- non-finite guard


def check_finite_losses(losses: np.ndarray, task_names: Sequence[str], step: int) -> None:
    """NonFiniteLossError naming the first task whose loss is NaN or Inf at ``step``."""
    losses = np.asarray(losses).reshape(-1)
    bad = [i for i, value in enumerate(losses) if not np.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"the loss of task {task_names[bad[0]]!r} is {losses[bad[0]]} at step {step}; the update was"
            " skipped, so the parameters and the last checkpoint are finite. Fix: lower"
            " optimizer.learning_rate, check the data, or set nonfinite='skip' to skip such steps"
        )


class NonFiniteGuard(Hook):
    """``nonfinite: "stop"``: raise :class:`NonFiniteLossError` when a task loss is NaN/Inf.

    The losses of step ``s`` are read after step ``s + 1`` was dispatched (and at the end), so
    the check never makes the host wait for the device.
    """

    def __init__(self, task_names: Sequence[str]):
        self.task_names = tuple(task_names)
        self.pending: tuple[int, jax.Array] | None = None

    def _check_pending(self) -> None:
        if self.pending is not None:
            step, losses = self.pending
            self.pending = None
            check_finite_losses(np.asarray(jax.device_get(losses)), self.task_names, step)

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        self._check_pending()
        self.pending = (step, metrics["loss"])

    def end(self, step: int, state: Any, *, stopped: bool) -> None:
        self._check_pending()


# --------------------------------------------------------------------------- logging


def is_log_step(step: int, *, first: int, every: int, last: int) -> bool:
    return step == first or step % every == 0 or step == last


class MetricsLog(Hook):
    """Train records (``metrics.jsonl``, TensorBoard) at the first step of the session, every
    ``every`` steps and the last: per-task losses, weights, gradient statistics, the learning
    rate, throughput and the number of skipped updates. Remembers the run's first logged
    losses (``first_train_loss``; pass the restored ones when resuming)."""

    def __init__(
        self,
        logger: MetricsLogger,
        task_names: Sequence[str],
        *,
        every: int,
        last_step: int,
        batch_size: int,
        learning_rate: float,
        first_train_loss: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.logger = logger
        self.task_names = tuple(task_names)
        self.every, self.last_step, self.batch_size = every, last_step, batch_size
        self.learning_rate = float(learning_rate)
        self.first_train_loss = None if first_train_loss is None else dict(first_train_loss)
        self.clock = clock
        self.first_step = 1
        self.window: tuple[float, int] = (clock(), 0)

    def start(self, step: int, state: Any) -> None:
        self.first_step = step + 1
        self.window = (self.clock(), step)

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        if not is_log_step(step, first=self.first_step, every=self.every, last=self.last_step):
            return
        host = jax.device_get(metrics)
        if self.first_train_loss is None:
            self.first_train_loss = dict(zip(self.task_names, map(float, np.asarray(host["loss"]).reshape(-1))))
        now = self.clock()
        started, start_step = self.window
        self.window = (now, step)
        scalars = step_scalars(host, self.task_names)
        scalars.update(
            learning_rate=self.learning_rate,
            examples_per_second=(step - start_step) * self.batch_size / max(now - started, 1e-9),
            skipped_updates=float(skipped_updates(state.opt_state)),
        )
        self.logger.write(step, "train", scalars)


class Progress(Hook):
    """A tqdm bar over the steps, with the task losses and throughput at the log steps."""

    def __init__(self, task_names: Sequence[str], *, total: int, every: int, enabled: bool = True, stream: Any = None):
        self.task_names = tuple(task_names)
        self.total, self.every, self.enabled, self.stream = total, every, enabled, stream
        self.bar: tqdm | None = None
        self.first_step = 1

    def start(self, step: int, state: Any) -> None:
        self.first_step = step + 1
        self.bar = tqdm(total=self.total, initial=step, disable=not self.enabled, unit="step", dynamic_ncols=True,
                        file=self.stream)  # fmt: skip

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if self.enabled and is_log_step(step, first=self.first_step, every=self.every, last=self.total):
            losses = np.asarray(jax.device_get(metrics["loss"])).reshape(-1)
            self.bar.set_postfix({name: f"{value:.3f}" for name, value in zip(self.task_names, losses)})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- evaluation


class Evaluation(Hook):
    """Validation every ``every`` steps (0: only at the end) and after the last step, with
    the best-so-far metric; each result goes to the log, to ``last``, and to the
    ``listeners``' ``after_eval`` (the checkpoint saver, a tuning hook).

    Args:
      evaluate: ``(params, split) -> {task: {metric: value}}``, e.g. ``Experiment.evaluator``.
      split: the validation split.
      best: the best-so-far tracker (restored when resuming).
      logger: where validation records go (None: nowhere).
      start_step: the step this session started from: a finished run started again is
        evaluated but not logged, and not passed on (there is nothing new).
    """

    def __init__(
        self,
        evaluate: Callable[[Any, str], Results],
        split: str,
        best: BestTracker,
        *,
        every: int,
        last_step: int,
        logger: MetricsLogger | None = None,
        listeners: Sequence[Hook] = (),
    ):
        self.evaluate, self.split, self.best = evaluate, split, best
        self.every, self.last_step = every, last_step
        self.logger = logger
        self.listeners = tuple(listeners)
        self.start_step = 0
        self.last: EvalResult | None = None
        self.history: list[EvalResult] = []

    def start(self, step: int, state: Any) -> None:
        self.start_step = step

    def run(self, step: int, state: Any, *, new: bool = True) -> EvalResult:
        """Evaluate ``state.params`` now; ``new``: record, log and pass on the result."""
        metrics = self.evaluate(state.params, self.split)
        improved = self.best.update(metrics, step) if new else False
        value = self.best.select(metrics)
        result = EvalResult(step, self.split, metrics, value, improved, self.best.score(value))
        self.last = result
        if new:
            self.history.append(result)
            if self.logger is not None:
                self.logger.write(step, self.split, eval_scalars(metrics), best=improved)
            run_hooks(self.listeners, "after_eval", step, state, result)
        return result

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        if self.every and step % self.every == 0 and step < self.last_step:
            self.run(step, state)

    def end(self, step: int, state: Any, *, stopped: bool) -> None:
        if not stopped:
            self.run(step, state, new=step > self.start_step)


# --------------------------------------------------------------------------- checkpoints


class CheckpointSaver(Hook):
    """Checkpoints every ``every`` steps, after each validation (scored, so the best one is
    kept) and when the run is stopped early; each step is saved at most once.

    Args:
      checkpointer: where the checkpoints go.
      extra: ``() -> dict`` of JSON saved with the state (data position, best-so-far, ...).
      saved_step: the step already on disk (the restored one), or None.
    """

    def __init__(self, checkpointer: Checkpointer, extra: Callable[[], dict], *, every: int, last_step: int,
                 saved_step: int | None = None):  # fmt: skip
        self.checkpointer, self.extra = checkpointer, extra
        self.every, self.last_step = every, last_step
        self.saved_step = saved_step

    def save(self, step: int, state: Any, score: float | None = None) -> None:
        if self.saved_step != step:
            self.checkpointer.save(step, state, self.extra(), score=score)
            self.saved_step = step

    def after_step(self, step: int, state: Any, metrics: Metrics) -> None:
        if step % self.every == 0 and step < self.last_step:
            self.save(step, state)

    def after_eval(self, step: int, state: Any, result: EvalResult) -> None:
        self.save(step, state, score=result.score if result.improved else None)

    def end(self, step: int, state: Any, *, stopped: bool) -> None:
        if stopped:
            self.save(step, state)

    def close(self) -> None:
        self.checkpointer.close()


# --------------------------------------------------------------------------- preemption


STOP_SIGNALS = {signal.SIGTERM: "preempted", signal.SIGINT: "interrupted"}


class Preemption(Hook):
    """SIGTERM (preemption) and Ctrl-C (SIGINT) ask the loop to stop after the current step,
    so a checkpoint is saved (``stop_reason``: ``"preempted"`` or ``"interrupted"``). A second
    Ctrl-C raises KeyboardInterrupt at once. Main thread only; elsewhere the signals keep
    their handlers."""

    def __init__(self, signals: Mapping[int, str] = STOP_SIGNALS):
        self.signals = dict(signals)
        self.previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        del frame
        if self.stop_reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop_reason = self.signals[signum]

    def start(self, step: int, state: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self) for signum in self.signals}

    def close(self) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        self.previous = {}


@contextlib.contextmanager
def closing(hooks: Sequence[Hook]):
    """Run the block, then ``close`` every hook (each once, even if one fails)."""
    try:
        yield hooks
    finally:
        errors = []
        for hook in hooks:
            try:
                hook.close()
            except Exception as error:  # noqa: BLE001 - close the others, then re-raise
                errors.append(error)
        if errors:
            raise errors[0]

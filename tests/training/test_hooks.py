"""Each loop hook alone, with a fake state and metrics: nothing compiles."""

from __future__ import annotations

import io
import json
import os
import signal
import types

import numpy as np
import pytest

from mtl_jax.evaluation import BestTracker
from mtl_jax.training import hooks as H

TASKS = ("left", "right")


def fake_state(skipped: int = 0, params=None):
    return types.SimpleNamespace(params=params, opt_state=types.SimpleNamespace(total_notfinite=np.int32(skipped)))


def fake_metrics(rng, losses=None):
    losses = rng.uniform(0.1, 3.0, len(TASKS)) if losses is None else np.asarray(losses, np.float32)
    return {"loss": losses, "weights": rng.uniform(0, 1, len(TASKS)), "grad_norm": rng.uniform(0, 1, len(TASKS))}


class FakeLogger:
    def __init__(self):
        self.records = []

    def write(self, step, split, scalars, **facts):
        self.records.append({"step": step, "split": split, **facts, **scalars})


class FakeCheckpointer:
    def __init__(self):
        self.saves, self.closed = [], False

    def save(self, step, state, extra, score=None):
        self.saves.append((step, extra, score))

    def close(self):
        self.closed = True


class Recorder(H.Hook):
    def __init__(self):
        self.results = []

    def after_eval(self, step, state, result):
        self.results.append(result)


# --------------------------------------------------------------------------- non-finite guard


def test_guard_names_the_task_and_step_one_step_later(rng):
    guard = H.NonFiniteGuard(TASKS)
    guard.start(0, fake_state())
    guard.after_step(1, fake_state(), fake_metrics(rng))
    guard.after_step(2, fake_state(), fake_metrics(rng, [1.0, np.nan]))  # read at the next step
    with pytest.raises(H.NonFiniteLossError, match="task 'right' is nan at step 2"):
        guard.after_step(3, fake_state(), fake_metrics(rng))


def test_guard_checks_the_last_step_at_the_end(rng):
    guard = H.NonFiniteGuard(TASKS)
    guard.after_step(7, fake_state(), fake_metrics(rng, [np.inf, 1.0]))
    with pytest.raises(H.NonFiniteLossError, match="task 'left' is inf at step 7"):
        guard.end(7, fake_state(), stopped=False)
    finite = H.NonFiniteGuard(TASKS)
    finite.after_step(1, fake_state(), fake_metrics(rng))
    finite.end(1, fake_state(), stopped=False)  # no error


# --------------------------------------------------------------------------- logging


def test_metrics_log_writes_first_every_and_last_step_with_throughput(rng):
    logger, now = FakeLogger(), iter(np.arange(0.0, 100.0, 0.5))
    log = H.MetricsLog(logger, TASKS, every=4, last_step=10, batch_size=8, learning_rate=1e-3,
                       clock=lambda: float(next(now)))  # fmt: skip
    log.start(0, None)
    metrics = {step: fake_metrics(rng) for step in range(1, 11)}
    for step in range(1, 11):
        log.after_step(step, fake_state(skipped=step // 5), metrics[step])
    assert [r["step"] for r in logger.records] == [1, 4, 8, 10]
    last = logger.records[-1]
    assert last["loss/right"] == pytest.approx(float(metrics[10]["loss"][1]))
    assert last["weight/left"] == pytest.approx(float(metrics[10]["weights"][0]))
    assert last["skipped_updates"] == 2.0 and last["learning_rate"] == 1e-3
    assert last["examples_per_second"] == pytest.approx((10 - 8) * 8 / 0.5)  # one clock tick per log
    assert log.first_train_loss == pytest.approx(dict(zip(TASKS, map(float, metrics[1]["loss"]))))


def test_metrics_log_keeps_the_restored_first_loss(rng):
    logger = FakeLogger()
    log = H.MetricsLog(logger, TASKS, every=5, last_step=20, batch_size=4, learning_rate=0.1,
                       first_train_loss={"left": 2.5, "right": 2.25})  # fmt: skip
    log.start(10, None)
    log.after_step(11, fake_state(), fake_metrics(rng))
    assert [r["step"] for r in logger.records] == [11]  # the first step of the session
    assert log.first_train_loss == {"left": 2.5, "right": 2.25}


# --------------------------------------------------------------------------- evaluation


def fake_evaluate(values):
    """An evaluator whose mean accuracy is values[call index]."""
    calls = iter(values)

    def evaluate(params, split):
        value = next(calls)
        return {task: {"accuracy": value, "loss": 1 - value} for task in TASKS}

    return evaluate


def test_evaluation_runs_every_n_and_at_the_end_and_tells_its_listeners():
    logger, listener = FakeLogger(), Recorder()
    evaluation = H.Evaluation(fake_evaluate([0.5, 0.7, 0.6]), "validation", BestTracker("mean/accuracy"),
                              every=5, last_step=12, logger=logger, listeners=(listener,))  # fmt: skip
    evaluation.start(0, fake_state())
    for step in range(1, 13):
        evaluation.after_step(step, fake_state(), {})
    evaluation.end(12, fake_state(), stopped=False)
    assert [r.step for r in listener.results] == [5, 10, 12]
    assert [r.improved for r in listener.results] == [True, True, False]
    assert [r.value for r in listener.results] == [0.5, 0.7, 0.6]
    assert evaluation.best.step == 10 and evaluation.last.step == 12
    assert [(r["step"], r["best"]) for r in logger.records] == [(5, True), (10, True), (12, False)]
    assert logger.records[0]["accuracy/left"] == 0.5


def test_evaluation_of_a_finished_run_started_again_is_not_recorded():
    logger, listener = FakeLogger(), Recorder()
    best = BestTracker("mean/loss", value=0.2, step=12)
    evaluation = H.Evaluation(fake_evaluate([0.9]), "validation", best, every=0, last_step=12,
                              logger=logger, listeners=(listener,))  # fmt: skip
    evaluation.start(12, fake_state())
    evaluation.end(12, fake_state(), stopped=False)
    assert evaluation.last.metrics["left"]["accuracy"] == 0.9
    assert logger.records == [] and listener.results == [] and best.to_json()["value"] == 0.2


def test_evaluation_is_skipped_when_the_run_was_stopped():
    evaluation = H.Evaluation(fake_evaluate([]), "validation", BestTracker("mean/loss"), every=0, last_step=9)
    evaluation.end(4, fake_state(), stopped=True)
    assert evaluation.last is None


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_every_n_after_each_eval_and_each_step_once():
    checkpointer, extras = FakeCheckpointer(), iter(range(100))
    saver = H.CheckpointSaver(checkpointer, lambda: {"n": next(extras)}, every=4, last_step=10)
    improved = H.EvalResult(4, "validation", {}, 0.5, True, -0.5)
    worse = H.EvalResult(6, "validation", {}, 0.9, False, -0.9)
    for step in range(1, 11):
        if step == 4:
            saver.after_eval(step, None, improved)
        if step == 6:
            saver.after_eval(step, None, worse)
        saver.after_step(step, None, {})
    saver.end(10, None, stopped=False)
    saver.close()
    assert [(step, score) for step, _, score in checkpointer.saves] == [(4, -0.5), (6, None), (8, None)]
    assert [extra["n"] for _, extra, _ in checkpointer.saves] == [0, 1, 2] and checkpointer.closed


def test_checkpoint_when_stopped_but_not_twice_nor_the_restored_step():
    checkpointer = FakeCheckpointer()
    saver = H.CheckpointSaver(checkpointer, dict, every=4, last_step=100, saved_step=8)
    saver.after_step(8, None, {})  # restored step: already on disk
    saver.after_step(9, None, {})
    saver.end(9, None, stopped=True)
    saver.end(9, None, stopped=True)
    assert [step for step, _, _ in checkpointer.saves] == [9]


# --------------------------------------------------------------------------- preemption, progress


@pytest.mark.parametrize("signum, reason", [(signal.SIGTERM, "preempted"), (signal.SIGINT, "interrupted")])
def test_sigterm_or_ctrl_c_asks_to_stop_and_the_handler_is_restored(signum, reason):
    def previous(signum, frame):  # pragma: no cover - must not be called
        raise AssertionError("the loop's handler should be installed")

    original = signal.signal(signum, previous)
    try:
        preemption = H.Preemption()
        preemption.start(0, None)
        assert H.stop_reason([preemption]) is None
        os.kill(os.getpid(), signum)
        assert preemption.stop_reason == reason and H.stop_reason([H.Hook(), preemption]) == reason
        if signum == signal.SIGINT:  # a second Ctrl-C does not wait for the step
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signum)
        preemption.close()
        assert signal.getsignal(signum) is previous
    finally:
        signal.signal(signum, original)


def test_progress_counts_steps_and_shows_the_losses(rng):
    stream = io.StringIO()
    progress = H.Progress(TASKS, total=6, every=2, stream=stream)
    progress.start(2, None)
    for step in range(3, 7):
        metrics = fake_metrics(rng)
        progress.after_step(step, None, metrics)
    assert progress.bar.n == 6
    progress.close()
    assert f"right={float(metrics['loss'][1]):.3f}" in stream.getvalue()


def test_closing_closes_every_hook_even_after_an_error():
    closed = []

    class Closing(H.Hook):
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)

    with pytest.raises(RuntimeError, match="boom"):
        with H.closing([Closing("a"), Closing("b")]):
            raise RuntimeError("boom")
    assert closed == ["a", "b"]


def test_records_after_the_restored_step_are_dropped(tmp_path):
    from mtl_jax.training.logging_sinks import drop_records_after

    lines = [json.dumps({"step": s, "split": "train"}) for s in range(1, 8)] + ['{"step": 8, "spl']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert drop_records_after(tmp_path, 5) == 3
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert drop_records_after(tmp_path, 5) == 0

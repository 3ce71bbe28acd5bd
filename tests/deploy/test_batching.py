"""Dynamic batching: concurrent submissions share calls, each gets its own outputs, errors
reach every waiting request, and closing answers everything queued first."""

from __future__ import annotations

import asyncio
import threading

from mtl_jax.deploy.batching import DynamicBatcher


class Recorder:
    """A fake model: output = 10 · input; records each call's inputs; waits on ``gate``."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items):
        self.gate.wait(timeout=30)
        self.calls.append(list(items))
        if any(item < 0 for item in items):
            raise ValueError("negative input")
        return [10 * item for item in items]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def test_requests_queued_during_a_call_share_the_next_call() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=8, window_s=0.0)
        batcher.start()
        recorder.gate.clear()  # the first call blocks until every other request is queued
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)
        others = [asyncio.ensure_future(batcher.submit([i, 100 + i])) for i in range(1, 4)]
        await asyncio.sleep(0.05)
        recorder.gate.set()
        results = await asyncio.gather(first, *others)
        await batcher.close()
        return results, batcher

    results, batcher = run(scenario())
    assert results == [[0], [10, 1010], [20, 1020], [30, 1030]]
    assert recorder.calls == [[0], [1, 101, 2, 102, 3, 103]]
    assert (batcher.calls, batcher.batched_inputs) == (2, 7)


def test_max_batch_caps_what_one_call_gathers() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=3, window_s=0.0)
        recorder.gate.clear()
        futures = [asyncio.ensure_future(batcher.submit([i])) for i in range(7)]
        await asyncio.sleep(0.01)
        batcher.start()
        recorder.gate.set()
        results = await asyncio.gather(*futures)
        await batcher.close()
        return results

    assert run(scenario()) == [[10 * i] for i in range(7)]
    assert [len(call) for call in recorder.calls] == [3, 3, 1]


def test_window_waits_only_while_requests_are_arriving() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=8, window_s=0.5)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher.submit([1]) == [10]  # nobody arriving: no wait
        alone = loop.time() - started
        batcher.arriving = 1  # a request is being read: the worker waits for it

        async def late():
            await asyncio.sleep(0.05)
            batcher.arriving = 0
            return await batcher.submit([2])

        together = await asyncio.gather(batcher.submit([3]), late())
        await batcher.close()
        return alone, together

    alone, together = run(scenario())
    assert alone < 0.4
    assert together == [[30], [20]]
    assert recorder.calls == [[1], [3, 2]]


def test_an_error_reaches_every_request_of_the_call_and_the_worker_goes_on() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=8, window_s=0.0)
        recorder.gate.clear()
        bad = asyncio.ensure_future(batcher.submit([-1]))
        good = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0.01)
        batcher.start()
        recorder.gate.set()
        outcomes = await asyncio.gather(bad, good, return_exceptions=True)
        after = await batcher.submit([4])
        await batcher.close()
        return outcomes, after

    outcomes, after = run(scenario())
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)
    assert after == [40]


def test_close_answers_everything_queued_first() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch=2, window_s=0.0)
        batcher.start()
        recorder.gate.clear()
        futures = [asyncio.ensure_future(batcher.submit([i])) for i in range(5)]
        await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        recorder.gate.set()
        await closing
        return [f.result() for f in futures]

    assert run(scenario()) == [[10 * i] for i in range(5)]
    assert sum(len(call) for call in recorder.calls) == 5

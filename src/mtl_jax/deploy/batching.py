"""Dynamic batching: concurrent requests share one compiled call.

Requests put their checked inputs on a queue and await a future. One worker task takes the
first request waiting, then everything already queued, and — while other requests are still
being read or parsed (``arriving`` > 0) — waits up to ``window_s`` for them, until
``max_batch`` inputs are gathered. The gathered inputs run as one call of ``run`` (the
predictor's bucketed, padded batches) in a single worker thread, so the event loop keeps
reading requests meanwhile; whatever arrives during a call forms the next batch. A lone
request therefore never waits for a window (its latency is one call), and under load the
batch grows by itself with the number of concurrent clients.

``close()`` lets the worker finish every queued request, then stops it (SIGTERM drain).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from typing import Any, Callable, Sequence


@dataclasses.dataclass
class Pending:
    items: Sequence[Any]
    future: asyncio.Future


class DynamicBatcher:
    """Gathers concurrent ``submit`` calls into calls of ``run(items) -> outputs``."""

    def __init__(self, run: Callable[[Sequence[Any]], list[Any]], max_batch: int = 64, window_s: float = 0.002):
        self.run = run
        self.max_batch = max_batch
        self.window_s = window_s
        self.arriving = 0
        self.calls = 0
        self.batched_inputs = 0
        self.queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtl-jax-model")
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self.work())

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """The outputs of ``items``, computed in a shared call."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(Pending(items, future))
        return await future

    async def gather(self, first: Pending) -> list[Pending]:
        loop = asyncio.get_running_loop()
        pending, count = [first], len(first.items)
        deadline = loop.time() + self.window_s
        while count < self.max_batch:
            try:
                following = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if self.arriving <= 0 or remaining <= 0:
                    break
                try:
                    following = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if following is None:  # close() asked: finish this batch, then stop
                self.queue.put_nowait(None)
                break
            pending.append(following)
            count += len(following.items)
        return pending

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            if first is None:
                return
            pending = await self.gather(first)
            items = [item for request in pending for item in request.items]
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, items)
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error
                for request in pending:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.calls += 1
            self.batched_inputs += len(items)
            start = 0
            for request in pending:
                if not request.future.done():
                    request.future.set_result(outputs[start : start + len(request.items)])
                start += len(request.items)

    async def close(self) -> None:
        """Answer everything queued, then stop the worker and its thread."""
        await self.queue.put(None)
        if self.worker is not None:
            await self.worker
        self.executor.shutdown(wait=True)

"""Serving: latency p50/p99 and throughput of ``mtl-jax serve`` for 1, 8 and 64 clients.

The server (``python -m mtl_jax.cli.deploy serve``, max batch 64, window 2 ms) runs in a
subprocess on loopback with the exported default model (DANTEStocks, BiGRU, 9 tasks). The
load generator is asyncio with one keep-alive HTTP/1.1 connection per client: by default a
minimal client on ``asyncio`` streams (``--client raw``: it writes the request and reads
the status line, headers and ``Content-Length`` body, checking the status — little CPU, so
the server gets the cores), or ``httpx.AsyncClient`` (``--client httpx``). Each client
sends one tweet per request (drawn in turn from ``TWEETS``), waits for the answer, and
sends the next (closed loop), for ``--seconds`` after a one-second warm-up. Per concurrency: p50 and p99 latency, requests/s and
examples/s, and the server's mean inputs per compiled call (from ``/health``). The last line
has the issue's targets: p50 ≤ 10 ms for one tweet at 1 client, and 64-client throughput
≥ 10× the 1-client throughput (dynamic batching).

Client and server share the machine's cores, so the figures include the client's cost.

    python benchmarks/serve.py --model DIR [--seconds 10] [--out benchmarks/results/serve_cpu.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TWEETS = (
    "$PETR4 subindo forte hoje , alvo em 15,40",
    "Vale despencando na abertura , que dia ruim para a bolsa",
    "#BBAS3 rompeu a resistência , compra confirmada",
    "Ibovespa fecha em alta com otimismo externo",
    "Medo de nova queda em $OIBR4 , vou zerar a posição",
    "Lucro do Itaú veio acima do esperado ! #ITUB4",
    "Dólar sobe e pressiona as ações de exportadoras",
    "Alguém sabe o que aconteceu com a CMIG4 hoje ?",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, port: int, max_batch: int, window_ms: float) -> subprocess.Popen:
    command = [sys.executable, "-m", "mtl_jax.cli.deploy", "serve", "--model", model, "--port", str(port),
               "--max-batch", str(max_batch), "--window-ms", str(window_ms)]  # fmt: skip
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=60) as response:
        return json.loads(response.read())


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()[-2000:]}")
        try:
            health(url)
            return
        except OSError:  # not listening yet
            time.sleep(0.5)
    raise RuntimeError("server did not start")


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: POST JSON, read the answer."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        self.writer.write(head + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        length = 0
        for line in headers.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def closed_loop(httpx, url: str, clients: int, seconds: float, warmup: float, kind: str = "raw") -> dict:
    """``clients`` concurrent closed-loop clients; latencies of requests started after warm-up."""
    latencies: list[float] = []
    examples = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    host, port = url.removeprefix("http://").split(":")

    async def client(k: int) -> None:
        nonlocal examples
        if kind == "raw":
            session = RawConnection(host, int(port))
            post = lambda payload: session.post("/predict", payload)  # noqa: E731
        else:
            session = httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), timeout=60)

            async def post(payload):
                response = await session.post(f"{url}/predict", json=payload)
                return response.status_code, response.content
        try:
            n = k
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                status, content = await post({"inputs": [TWEETS[n % len(TWEETS)]]})
                done = time.perf_counter()
                if status != 200:
                    raise RuntimeError(f"status {status}: {content[:200]!r}")
                if sent >= measure_from:
                    latencies.append(done - sent)
                    examples += 1
                n += clients
        finally:
            await (session.close() if kind == "raw" else session.aclose())

    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - measure_from
    values = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "examples_per_s": round(examples / elapsed, 1),
    }


async def benchmark(args: argparse.Namespace) -> list[dict]:
    import jax  # noqa: PLC0415

    httpx = None
    if args.client == "httpx":
        import httpx  # noqa: PLC0415 - only for --client httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(args.model, port, args.max_batch, args.window_ms)
    metadata = json.loads((Path(args.model) / "metadata.json").read_text())
    common = {
        "benchmark": "serve", "model": metadata["dataset"], "tasks": len(metadata["tasks"]),
        "trunk": metadata["source"].get("config", {}).get("model", {}).get("trunk"),
        "max_batch": args.max_batch, "window_ms": args.window_ms, "client": "asyncio streams (raw)" if httpx is None else f"httpx {httpx.__version__} async",
        "device_kind": jax.devices()[0].device_kind, "cpus": os.cpu_count(), "host": platform.node(),
        "jax": jax.__version__,
    }  # fmt: skip
    rows = []
    try:
        await asyncio.to_thread(wait_ready, url, process)
        for clients in args.clients:
            before = await asyncio.to_thread(health, url)
            load_before = os.getloadavg()[0]
            result = await closed_loop(httpx, url, clients, args.seconds, args.warmup, args.client)
            after = await asyncio.to_thread(health, url)
            calls = after["calls"] - before["calls"]
            mean_batch = (after["batched_inputs"] - before["batched_inputs"]) / max(calls, 1)
            row = {**common, "clients": clients, **result, "mean_inputs_per_call": round(mean_batch, 2),
                   "load_average_1min": round(max(load_before, os.getloadavg()[0]), 2)}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    by_clients = {row["clients"]: row for row in rows}
    if 1 in by_clients and max(by_clients) > 1:
        single, most = by_clients[1], by_clients[max(by_clients)]
        ratio = most["requests_per_s"] / single["requests_per_s"]
        summary = {
            **common, "summary": True, "p50_ms_1_client": single["p50_ms"], "target_p50_ms": 10.0,
            "p50_target_met": single["p50_ms"] <= 10.0, f"throughput_ratio_{max(by_clients)}_to_1": round(ratio, 2),
            "target_ratio": 10.0, "ratio_target_met": ratio >= 10.0,
        }  # fmt: skip
        print(json.dumps(summary), flush=True)
        rows.append(summary)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="directory written by `mtl-jax export` (the default model)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--window-ms", type=float, default=2.0)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="the load generator's HTTP client")
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = parser.parse_args()
    rows = asyncio.run(benchmark(args))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as file:
            for row in rows:
                file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

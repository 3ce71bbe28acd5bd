"""``mtl-jax serve`` over real HTTP on loopback: concurrent clients, bad requests, SIGTERM.

The server runs in a subprocess (``python -m mtl_jax.cli.deploy serve``) on a free port;
clients use the standard library's ``http.client`` with keep-alive connections. Every
request loop is bounded (a number of requests or a deadline)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mtl_jax.deploy.artifact import load_artifact
from mtl_jax.deploy.predict import Predictor
from tests.deploy.conftest import ROOT
from tests.helpers import persistent_jit_cache

STARTUP_SECONDS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A ``serve`` subprocess; ``request`` sends one HTTP request on a fresh connection."""

    def __init__(self, model: Path, tmp_path: Path, cache: Path, max_batch: int = 4):
        self.port = free_port()
        self.stderr_path = tmp_path / f"serve-{self.port}.err"
        self.stderr = self.stderr_path.open("w")
        command = [sys.executable, "-m", "mtl_jax.cli.deploy", "serve", "--model", str(model),
                   "--port", str(self.port), "--max-batch", str(max_batch)]  # fmt: skip
        env = dict(os.environ, JAX_PLATFORMS="cpu", **persistent_jit_cache(cache))
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early: {self.stderr_path.read_text()[-2000:]}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError("server did not start in time")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None, connection=None) -> tuple[int, dict]:
        own = connection is None
        connection = self.connection() if own else connection
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            if own:
                connection.close()

    def post(self, payload, connection=None) -> tuple[int, dict]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", "/predict", body, connection)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.stderr.close()
        return code

    def summary(self) -> dict:
        lines = [line for line in self.stderr_path.read_text().splitlines() if line.startswith("{")]
        return json.loads(lines[-1])


@pytest.fixture(scope="module")
def serve_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The persistent compilation cache of every server this module starts: the shapes the
    first one compiles at warm-up, the next one loads (the suite's own cache when it set one)."""
    return Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or tmp_path_factory.mktemp("serve_cache"))


@pytest.fixture(scope="module")
def server(dante_model: Path, tmp_path_factory: pytest.TempPathFactory, serve_cache: Path):
    running = Server(dante_model, tmp_path_factory.mktemp("serve"), serve_cache)
    yield running
    assert running.stop() == 0


def test_health_and_metadata(server: Server, dante_model: Path) -> None:
    status, health = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok" and "upos" in health["tasks"]
    status, metadata = server.request("GET", "/metadata")
    stored = load_artifact(dante_model).metadata
    assert status == 200 and metadata["format"] == stored["format"] and metadata["tasks"] == stored["tasks"]
    assert metadata["preprocessing"]["vocabulary_size"] == len(stored["preprocessing"]["vocabulary"])


def test_concurrent_clients_get_their_own_predictions_in_shared_calls(server: Server, dante_model: Path) -> None:
    words = ["PETR4", "sobe", "Vale", "cai", "hoje", "forte", "dólar", "bolsa", "!", "alta"]
    texts = [" ".join(words[(i + k) % len(words)] for k in range(1 + i % 9)) for i in range(48)]
    results: dict[int, tuple[int, dict]] = {}

    def client(offset: int) -> None:
        connection = server.connection()
        for i in range(offset, len(texts), 12):  # 4 requests per client
            results[i] = server.post({"inputs": [texts[i]], "tasks": ["upos", "joy"], "top_k": 2}, connection)
        connection.close()

    _, before = server.request("GET", "/health")
    threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    _, after = server.request("GET", "/health")
    assert sorted(results) == list(range(len(texts)))
    local = Predictor(load_artifact(dante_model)).predict(texts, ["upos", "joy"], top_k=2)
    for i, (status, body) in results.items():
        assert status == 200
        (prediction,) = body["predictions"]
        assert prediction["tokens"] == texts[i].split()
        assert prediction["tasks"]["upos"]["tags"] == local[i]["tasks"]["upos"]["tags"]
        assert prediction["tasks"]["joy"]["probability"] == pytest.approx(local[i]["tasks"]["joy"]["probability"], abs=1e-5)
    answered, calls = after["answered"] - before["answered"], after["calls"] - before["calls"]
    assert answered == len(texts)
    assert calls < answered  # concurrent requests shared compiled calls


@pytest.mark.parametrize(
    "body, status, expected",
    [
        (b'{"inputs": ["PETR4 sobe"', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b'["PETR4"]', 400, "JSON object"),
        (b'{"inputs": "PETR4"}', 400, "must be a list"),
        (b'{"inputs": []}', 400, "empty"),
        (b'{"inputs": ["a"], "extra": 1}', 400, "unknown field 'extra'"),
        (b'{"inputs": ["a"], "tasks": "joy"}', 400, "list of task names"),
        (b'{"inputs": ["a"], "tasks": ["nope"]}', 400, "unknown task 'nope'"),
        (b'{"inputs": ["a"], "top_k": 0}', 400, "top_k"),
        (b'{"inputs": [3]}', 422, "input 0"),
        (b'{"inputs": ["ok", ""]}', 422, "input 1: no tokens"),
        (json.dumps({"inputs": [" ".join(["x"] * 100)]}).encode(), 422, "more than the 64"),
        (json.dumps({"inputs": ["x" * 3000]}).encode(), 422, "characters"),
        (json.dumps({"inputs": ["a"] * 300}).encode(), 413, "limit of 256"),
        (json.dumps({"inputs": ["a" * 1000] * 1100}).encode(), 413, "exceeds the limit"),
    ],
    ids=["truncated", "not-utf8", "array", "inputs-type", "no-inputs", "unknown-field", "tasks-type", "unknown-task",
         "top-k", "input-type", "empty-text", "too-many-tokens", "too-many-chars", "too-many-inputs", "oversize-body"],
)  # fmt: skip
def test_bad_requests_get_a_4xx_one_line_and_the_server_keeps_serving(server: Server, body, status, expected) -> None:
    got, answer = server.post(body)
    assert got == status
    assert list(answer) == ["error"] and "\n" not in answer["error"] and expected in answer["error"]
    ok, good = server.post({"inputs": ["PETR4 sobe"]})
    assert ok == 200 and good["predictions"][0]["tokens"] == ["PETR4", "sobe"]


def test_wrong_method_and_path_are_json_errors(server: Server) -> None:
    assert server.request("GET", "/predict")[0] == 405
    status, answer = server.request("GET", "/nope")
    assert status == 404 and "/predict" in answer["error"]


def test_sigterm_during_load_drains_every_accepted_request(dante_model: Path, tmp_path: Path, serve_cache: Path) -> None:
    running = Server(dante_model, tmp_path, serve_cache)
    statuses: list[int] = []
    refused = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 120

    def client(k: int) -> None:
        connection = running.connection()
        for n in range(400):  # bounded; ends when the server goes away
            if time.monotonic() > stop_at:
                break
            try:
                status, body = running.post({"inputs": [f"PETR4 sobe {n} vezes", "Vale cai"][: 1 + k % 2]}, connection)
                assert len(body["predictions"]) == 1 + k % 2
            except (OSError, http.client.HTTPException):
                with lock:
                    refused.append(k)
                break
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    while len(statuses) < 40 and time.monotonic() < stop_at:
        time.sleep(0.05)
    running.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=180)
    code = running.stop()
    summary = running.summary()
    assert code == 0
    assert len(statuses) >= 40 and set(statuses) == {200}
    assert summary["event"] == "stopped"
    assert summary["accepted"] == summary["answered"] == len(statuses)
    assert len(refused) == 8  # every client saw the server close, none hung


def test_a_port_in_use_is_one_line_exit_2(dante_model: Path, capsys) -> None:
    from mtl_jax.cli.deploy import main  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(dante_model), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{port}" in err and "--port" in err

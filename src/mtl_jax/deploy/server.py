"""``mtl-jax serve``: an artifact behind an HTTP JSON API (uvicorn + Starlette).

Endpoints:

* ``GET /health`` → ``{"status": "ok", "tasks": [...], "calls": n, "batched_inputs": m}``;
* ``GET /metadata`` → the artifact's metadata (the vocabulary and parameter names replaced
  by their sizes);
* ``POST /predict`` with ``{"inputs": [...], "tasks": [...]?, "top_k": k?, "threshold": x?}``
  → ``{"predictions": [...]}``, each as ``mtl-jax predict`` prints it.

Bad requests get a 4xx and ``{"error": "<one line>"}``, and the server keeps serving: a body
over ``max_body_bytes`` (413), malformed JSON or wrong types (400), no inputs or more than
``max_inputs`` (400 / 413), an input the model cannot take — empty, too long, wrong shape
(422). Concurrent requests are batched (:mod:`mtl_jax.deploy.batching`); every (batch size,
length bucket) shape is compiled before the port opens.

SIGTERM: uvicorn stops accepting connections, every request already read is answered, the
batcher drains, and the process exits 0; the last line on stderr is a JSON summary
(``accepted``, ``answered``, ``rejected``, ``failed``).

The ``serve`` extra (``pip install 'mtl_jax[serve]'``) provides uvicorn and Starlette; they
are imported only here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from typing import Any, Mapping

from mtl_jax.deploy.batching import DynamicBatcher
from mtl_jax.deploy.predict import Predictor, check_options
from mtl_jax.errors import ConfigError, DataError

MAX_BODY_BYTES = 1 << 20
MAX_INPUTS = 256
MAX_CHARS = 2_000
REQUEST_KEYS = ("inputs", "tasks", "top_k", "threshold")


class RequestError(Exception):
    """A bad request: its HTTP status and one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def public_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata without the long lists (vocabulary, parameter names)."""
    public = json.loads(json.dumps(metadata))
    pre = public.get("preprocessing", {})
    if "vocabulary" in pre:
        pre["vocabulary_size"] = len(pre.pop("vocabulary"))
    public.get("params", {}).pop("names", None)
    return public


async def read_body(request: Any, limit: int) -> bytes:
    """The request body; RequestError 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(body: bytes, predictor: Predictor, max_inputs: int) -> dict[str, Any]:
    """The checked request fields; RequestError for malformed JSON or wrong types."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"the body is not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise RequestError(400, 'the body must be a JSON object like {"inputs": [...]}')
    unknown = sorted(set(payload) - set(REQUEST_KEYS))
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; accepted fields: {', '.join(REQUEST_KEYS)}")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list):
        raise RequestError(400, '"inputs" must be a list of inputs')
    if not inputs:
        raise RequestError(400, '"inputs" is empty; give at least one input')
    if len(inputs) > max_inputs:
        raise RequestError(413, f"{len(inputs)} inputs exceed the limit of {max_inputs} per request")
    tasks = payload.get("tasks")
    if tasks is not None and (not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks)):
        raise RequestError(400, '"tasks" must be a list of task names')
    top_k, threshold = payload.get("top_k", 1), payload.get("threshold", 0.5)
    try:
        names = predictor.check_tasks(tasks)
        check_options(top_k, threshold)
    except ConfigError as error:
        raise RequestError(400, str(error).replace("--top-k", '"top_k"').replace("--threshold", '"threshold"')) from error
    return {"inputs": inputs, "tasks": names, "top_k": top_k, "threshold": threshold}


def error_response(status: int, message: str):
    from starlette.responses import JSONResponse  # noqa: PLC0415

    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def make_app(predictor: Predictor, *, max_batch: int = 64, window_s: float = 0.002,
             max_body_bytes: int = MAX_BODY_BYTES, max_inputs: int = MAX_INPUTS):  # fmt: skip
    """The Starlette application serving ``predictor``."""
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.responses import JSONResponse  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    counters = {"accepted": 0, "answered": 0, "rejected": 0, "failed": 0}
    metadata = public_metadata(predictor.metadata)
    state: dict[str, DynamicBatcher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher = DynamicBatcher(predictor.scores, max_batch=max_batch, window_s=window_s)
        batcher.start()
        state["batcher"] = batcher
        try:
            yield
        finally:
            await batcher.close()
            print(json.dumps({"event": "stopped", **counters, "calls": batcher.calls}), file=sys.stderr, flush=True)

    async def health(request):
        batcher = state["batcher"]
        return JSONResponse({"status": "ok", "tasks": list(predictor.tasks), "calls": batcher.calls,
                             "batched_inputs": batcher.batched_inputs, **counters})  # fmt: skip

    async def get_metadata(request):
        return JSONResponse(metadata)

    async def predict(request):
        batcher = state["batcher"]
        batcher.arriving += 1
        submitted = False
        try:
            body = await read_body(request, max_body_bytes)
            fields = parse_request(body, predictor, max_inputs)
            try:
                items = predictor.prepare(fields["inputs"])
            except DataError as error:
                raise RequestError(422, str(error)) from error
            counters["accepted"] += 1
            batcher.arriving -= 1
            submitted = True
            try:
                outputs = await batcher.submit(items)
            except Exception as error:  # noqa: BLE001 - a model failure: answer, keep serving
                counters["failed"] += 1
                return error_response(500, f"the model failed on this request ({type(error).__name__}: {error})")
            predictions = [
                predictor.format(item, row, fields["tasks"], fields["top_k"], fields["threshold"])
                for item, row in zip(items, outputs)
            ]
            counters["answered"] += 1
            return JSONResponse({"predictions": predictions})
        except RequestError as error:
            counters["rejected"] += 1
            return error_response(error.status, str(error))
        finally:
            if not submitted:
                batcher.arriving -= 1

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metadata", get_metadata, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        404: lambda request, exc: error_response(404, f"no endpoint {request.url.path}; endpoints: /health, /metadata, /predict"),
        405: lambda request, exc: error_response(405, f"{request.method} is not allowed on {request.url.path}"),
    })  # fmt: skip
    app.state.counters = counters
    return app


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, *, max_batch: int = 64,
          window_s: float = 0.002, log_level: str = "warning", ready_message: bool = True) -> int:  # fmt: skip
    """Warm up every shape, serve until SIGTERM/SIGINT, drain, return 0."""
    try:
        import uvicorn  # noqa: PLC0415
    except ImportError as error:
        raise ConfigError("mtl-jax serve needs the serve extra; fix: pip install 'mtl_jax[serve]' (uvicorn, starlette)") from error
    check_port(host, port)  # before the (long) warm-up
    shapes = predictor.warm_up()
    app = make_app(predictor, max_batch=max_batch, window_s=window_s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=60, lifespan="on")  # fmt: skip

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and ready_message:
                url = f"http://{host}:{port}"
                print(json.dumps({"event": "serving", "url": url, "compiled_shapes": shapes}), file=sys.stderr, flush=True)

    server = Server(config)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler
    # underneath makes that a normal return, so a drained SIGTERM exits with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        if not server.started:
            raise ConfigError(f"could not listen on {host}:{port} (in use or not allowed); fix: pass another --port or --host") from None
        raise
    return 0


def check_port(host: str, port: int) -> None:
    """ConfigError unless ``host:port`` can be bound now."""
    import socket  # noqa: PLC0415

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror or error}); fix: pass another --port or --host") from None

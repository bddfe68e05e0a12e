"""An ASGI app run as several worker processes, every worker answering ``/metrics`` with the
merged metrics of all of them (plain ASGI, no framework).

Each worker records into its own memory-mapped file in ``$INFERENCE_METRICS_MULTIPROC_DIR``
(``PrometheusBackend.from_env`` reads the variable); a scrape of any worker, or of a separate
exporter (``inference-metrics serve --multiprocess-dir DIR``), merges every worker's file. See
docs/multiprocess.md.

Run it::

    export INFERENCE_METRICS_MULTIPROC_DIR=$(mktemp -d)
    # optional: export METRICS_TOKEN_FILE=/path/to/tokens (else /metrics is unguarded)
    uvicorn examples.multiprocess_app:app --workers 3 --port 8000
    # or: gunicorn examples.multiprocess_app:app -w 3 -k uvicorn.workers.UvicornWorker
    for i in $(seq 100); do curl -s "127.0.0.1:8000/v1/completions?model=m" >/dev/null; done
    curl -s 127.0.0.1:8000/metrics | grep '^inference_model_request_total'   # 100, every time

Endpoints: ``GET /v1/completions?model=NAME`` records one request (``&sleep=SECONDS`` holds it
that long), ``GET /metrics`` the merged exposition (``metrics_app``, the guarded exposition as an
ASGI app), ``GET /pid`` this worker's process id.
"""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import parse_qs

from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.asgi import Receive, Scope, Send, metrics_app
from inference_metrics.server import NoAuth, TokenFileAuthenticator

# In multiprocess mode the registry exposes the merged view of every worker writing there.
registry = CollectorRegistry()
recorder = Recorder(PrometheusBackend.from_env(registry))
# The guarded exposition app, mounted at /metrics in every worker (it renders in threads of its
# own: reading every worker's file stays off the event loop). Guarded by the bearer tokens listed
# in $METRICS_TOKEN_FILE when it is set; unguarded only when asked for by name (NoAuth).
_token_file = os.environ.get("METRICS_TOKEN_FILE")
metrics = metrics_app(
    registry=registry,
    authenticator=TokenFileAuthenticator(_token_file) if _token_file else NoAuth(),
)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode("latin-1"))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _completion(scope: Scope, send: Send) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    model = query.get("model", ["default"])[0]
    received = time.monotonic()
    recorder.record_request_started(model, model, 0)
    recorder.record_running_request_started(model)
    try:
        sleep = float(query.get("sleep", ["0"])[0])
        if sleep > 0:
            await asyncio.sleep(min(sleep, 10.0))
        body = b'{"choices": [{"text": "ok"}]}'
        await _respond(send, 200, body, "application/json")
    finally:
        recorder.record_running_request_finished(model)
    recorder.record_request_completed(
        model, model, received=received, completed=time.monotonic(), response_size=len(body)
    )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application."""
    if scope["type"] == "lifespan":  # the metrics app starts and stops its render threads
        await metrics(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/metrics":
        await metrics(scope, receive, send)
    elif path == "/pid":
        await _respond(send, 200, str(os.getpid()).encode(), "text/plain")
    elif path == "/v1/completions":
        await _completion(scope, send)
    else:
        await _respond(send, 404, b"not found\n", "text/plain")

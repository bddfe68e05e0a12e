"""An OpenAI-compatible FastAPI app measured by ``MetricsMiddleware``, served by uvicorn.

Serves on 127.0.0.1:

* ``POST /v1/chat/completions`` and ``POST /v1/completions``: a JSON completion, or with
  ``"stream": true`` a ``text/event-stream`` (usage in the last event when the client sends
  ``"stream_options": {"include_usage": true}``, then ``data: [DONE]``);
* ``GET /metrics/``: the endpoint picker's metrics, to a client that presents a bearer token
  listed in ``--token-file`` (401 without one; ``/metrics`` redirects to ``/metrics/``, as any
  Starlette mount does).

The handlers know nothing of metrics: the middleware measures what goes over the wire (request
and response bytes, the model, the status, usage, TTFT/TPOT, a client that leaves). The "model"
repeats the prompt's words: ``max_tokens`` of them (default 8), and it answers under the name
``<model>-served`` so that the target model label shows where the request went.

Run it::

    pip install 'inference-metrics' fastapi uvicorn
    echo "$(openssl rand -hex 16)" > /tmp/metrics-token
    python examples/fastapi_app.py --port 8000 --token-file /tmp/metrics-token
    curl -s 127.0.0.1:8000/v1/chat/completions -d '{"model": "m", "messages": [{"role": "user",
         "content": "hi there"}], "stream": true, "stream_options": {"include_usage": true}}'
    TOKEN=$(cat /tmp/metrics-token)
    curl -s -H "Authorization: Bearer $TOKEN" 127.0.0.1:8000/metrics/ | grep inference_model_

Several worker processes: ``--workers N`` runs N uvicorn workers over the multiprocess store.
Each worker records into its own memory-mapped file in ``$INFERENCE_METRICS_MULTIPROC_DIR`` (a
fresh temporary directory when it is not set), and whichever worker answers ``/metrics/`` merges
every worker's file, so each scrape shows every request exactly::

    python examples/fastapi_app.py --port 8000 --token-file /tmp/metrics-token --workers 3

or with uvicorn's own command line (the app factory reads the token file's path from
``METRICS_TOKEN_FILE``)::

    export INFERENCE_METRICS_MULTIPROC_DIR=$(mktemp -d) METRICS_TOKEN_FILE=/tmp/metrics-token
    uvicorn --app-dir examples --factory fastapi_app:create_app --workers 3 --port 8000

See docs/multiprocess.md (an exporter beside the workers, gunicorn hooks) and docs/asgi.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.asgi import MetricsMiddleware, metrics_app
from inference_metrics.server import TokenFileAuthenticator

#: Where the app factory (:func:`create_app`) reads the token file's path.
AUTH_FILE_VARIABLE = "METRICS_TOKEN_FILE"
#: Where ``PrometheusBackend`` finds the multiprocess store's directory (its own variable).
MULTIPROC_VARIABLE = "INFERENCE_METRICS_MULTIPROC_DIR"


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list):
        return " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return str(body.get("prompt", ""))


def _generate(body: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The completion's words and its usage."""
    words = _prompt(body).split() or ["ok"]
    count = body.get("max_tokens", 8)
    if not isinstance(count, int) or not 0 < count <= 4096:
        raise HTTPException(status_code=400, detail="max_tokens must be 1..4096")
    output = [words[i % len(words)] for i in range(count)]
    return output, {
        "prompt_tokens": len(words),
        "completion_tokens": count,
        "total_tokens": len(words) + count,
    }


def make_app(token_file: str | Path, registry: CollectorRegistry | None = None) -> FastAPI:
    """The application, recording into ``registry`` (a new one by default); ``/metrics`` serves
    it to the bearer tokens listed in ``token_file``. With ``$INFERENCE_METRICS_MULTIPROC_DIR``
    set, the backend records into the multiprocess store there and ``/metrics`` serves the merged
    view of every process writing to it."""
    registry = registry if registry is not None else CollectorRegistry()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    async def complete(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status_code=400, detail="the body must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise HTTPException(status_code=400, detail="a JSON object with a model")
        chat = request.url.path.endswith("/chat/completions")
        served = body["model"] + "-served"
        words, usage = _generate(body)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return StreamingResponse(
                _events(served, chat, words, usage if include_usage else None),
                media_type="text/event-stream",
            )
        text = " ".join(words)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}}
            if chat
            else {"index": 0, "text": text}
        )
        return {
            "object": "chat.completion" if chat else "text_completion",
            "model": served,
            "choices": [{**choice, "finish_reason": "length"}],
            "usage": usage,
        }

    # The guarded exposition: format negotiation and gzip, 401 without a listed token (compared in
    # constant time; the file is re-read when it changes, and unreadable means 503, fail closed).
    app.mount(
        "/metrics", metrics_app(registry=registry, authenticator=TokenFileAuthenticator(token_file))
    )
    app.add_middleware(MetricsMiddleware, recorder=Recorder(PrometheusBackend(registry)))
    return app


async def _events(
    served: str, chat: bool, words: list[str], usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    for word in words:
        await asyncio.sleep(0)  # a real model computes here
        choice = {"index": 0, "delta": {"content": word + " "}} if chat else {"text": word + " "}
        yield _event({"object": kind, "model": served, "choices": [choice]})
    if usage is not None:
        yield _event({"object": kind, "model": served, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def create_app() -> FastAPI:
    """The app for ``uvicorn --factory`` (one per worker): the token file named by
    ``$METRICS_TOKEN_FILE``."""
    token_file = os.environ.get(AUTH_FILE_VARIABLE)
    if not token_file:
        raise RuntimeError(f"set {AUTH_FILE_VARIABLE} to the file of bearer tokens")
    return make_app(token_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--token-file", required=True, help="bearer tokens allowed to read /metrics, one a line"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, over the multiprocess store (default 1)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.workers == 1:
        uvicorn.run(make_app(args.token_file), host="127.0.0.1", port=args.port)
        return
    # The workers are new processes: they find the token file and the store in the environment.
    os.environ[AUTH_FILE_VARIABLE] = str(Path(args.token_file).resolve())
    if not os.environ.get(MULTIPROC_VARIABLE):
        os.environ[MULTIPROC_VARIABLE] = tempfile.mkdtemp(prefix="inference-metrics-")
    uvicorn.run(
        "fastapi_app:create_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
    )


if __name__ == "__main__":
    main()

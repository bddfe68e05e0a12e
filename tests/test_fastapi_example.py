"""examples/fastapi_app.py served by uvicorn on 127.0.0.1: what its /metrics shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .examples import EXAMPLES, load_example
from .expo import Family, parse_text
from .prometheus_harness import free_port, stop_process
from .uvicorn_harness import serve

M = {"model_name": "m", "target_model_name": "m-served"}


TOKEN = "example-scrape-token"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    token_file = tmp_path / "tokens"
    token_file.write_text(TOKEN + "\n")
    with (
        serve(load_example("fastapi_app.py").make_app(token_file)) as url,
        httpx.Client(base_url=url, timeout=10) as c,
    ):
        yield c


def metrics(client: httpx.Client) -> dict[str, Family]:
    response = client.get("/metrics/", headers=AUTHORIZED)
    assert response.status_code == 200
    return parse_text(response.text)


def test_metrics_mount_refuses_a_scrape_without_a_token(client: httpx.Client) -> None:
    response = client.get("/metrics/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "inference_model" not in response.text


def test_metrics_mount_refuses_a_wrong_token(client: httpx.Client) -> None:
    response = client.get("/metrics/", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code in (401, 403)
    assert "inference_model" not in response.text


def test_metrics_mount_serves_a_listed_token_gzip_when_asked(client: httpx.Client) -> None:
    client.post("/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1})
    response = client.get("/metrics/", headers={**AUTHORIZED, "Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "inference_model_request_total" in parse_text(response.text)


def test_json_and_streamed_completions_are_measured_as_sent(client: httpx.Client) -> None:
    sent = received = 0
    for stream in (False, True):
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "naïve café"}],
            "max_tokens": 3,
            "stream": stream,
            "stream_options": {"include_usage": True},
        }
        raw = json.dumps(body).encode()
        response = client.post("/v1/chat/completions", content=raw)
        assert response.status_code == 200
        sent += len(raw)
        received += response.num_bytes_downloaded
    fams = metrics(client)
    assert fams["inference_model_request_total"].value("inference_model_request_total", **M) == 2
    sizes = fams["inference_model_request_sizes"]
    assert sizes.value("inference_model_request_sizes_sum", **M) == sent
    responses = fams["inference_model_response_sizes"]
    assert responses.value("inference_model_response_sizes_sum", **M) == received
    output = fams["inference_model_output_tokens"]
    assert output.value("inference_model_output_tokens_sum", **M) == 6
    ttft = fams["inference_model_request_ttft_seconds"]
    assert ttft.value("inference_model_request_ttft_seconds_count", **M) == 1


def test_bad_max_tokens_is_counted_with_its_status(client: httpx.Client) -> None:
    response = client.post("/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 0})
    assert response.status_code == 400
    errors = metrics(client)["inference_model_request_error_total"]
    labels = {"model_name": "m", "target_model_name": "m", "error_code": "BadRequest"}
    assert errors.value("inference_model_request_error_total", **labels) == 1


@pytest.mark.slow
def test_under_several_workers_every_scrape_shows_every_request(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(TOKEN + "\n")
    store = tmp_path / "store"
    store.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "fastapi_app.py"),
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--workers",
            "2",
        ],
        env={**os.environ, "INFERENCE_METRICS_MULTIPROC_DIR": str(store)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the example exited with {process.returncode}"
            try:
                if httpx.get(url + "/metrics/", headers=AUTHORIZED).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the example did not start"
            time.sleep(0.1)
        n = 20
        for i in range(n):  # a new connection each: the workers share them
            body = {"model": "m", "prompt": "a b", "max_tokens": 2, "stream": i % 2 == 1}
            assert httpx.post(url + "/v1/completions", json=body).status_code == 200
        # Whichever worker answers a scrape merges every worker's file.
        for _ in range(8):
            scraped = parse_text(httpx.get(url + "/metrics/", headers=AUTHORIZED).text)
            total = scraped["inference_model_request_total"]
            assert total.value("inference_model_request_total", **M) == n
    finally:
        stop_process(process)

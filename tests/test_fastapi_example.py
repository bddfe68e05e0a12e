"""examples/fastapi_app.py served by uvicorn on 127.0.0.1: what its /metrics shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .examples import load_example
from .expo import Family, parse_text
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

"""End to end: OpenAI-style traffic through a real Envoy, the example endpoint picker as its
ext_proc server, and a deterministic model server behind it; the picker's /metrics must count
exactly what went through.

For each response body mode (BUFFERED, STREAMED, FULL_DUPLEX_STREAMED) one Envoy and one picker
(subprocesses, free loopback ports) serve every test of this module; the model server is shared.
Each test uses its own model names, so its series are its own. Token counts and body sizes are
compared with what the model server really sent (and with hand-computed numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder, RequestContext

from .envoy_harness import (
    BODY_MODES,
    HarnessError,
    ManagedProcess,
    Reply,
    free_ports,
    load_example_server,
    post,
    render_envoy_config,
    scrape,
    start_envoy,
    start_picker,
)
from .expo import Family, parse_registry
from .openai_client import COMPLETED, CountingTransport, openai_client, stream_with_usage
from .openai_upstream import Exchange, OpenAIUpstream, UpstreamThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

FAILURES = {"broken-model": 500, "overloaded-model": 503}
REWRITES = {"alias-model": "real-model"}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIUpstream]:
    server = OpenAIUpstream(failures=FAILURES)
    thread = UpstreamThread(server)
    thread.start()
    try:
        yield server
    finally:
        thread.stop()


@dataclass
class Gateway:
    """Envoy + the example picker for one response body mode."""

    mode: str
    listener_port: int
    metrics_port: int
    upstream: OpenAIUpstream
    processes: list[ManagedProcess] = field(default_factory=list)

    def send(
        self,
        body: bytes | dict[str, Any],
        path: str = "/v1/completions",
        headers: dict[str, str] | None = None,
    ) -> tuple[Reply, str]:
        """POST through Envoy; returns the reply and the request's x-test-case."""
        case = uuid.uuid4().hex
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = post(self.listener_port, path, data, {"x-test-case": case, **(headers or {})})
        return reply, case

    def exchange(self, case: str) -> Exchange:
        """The one response the model server sent for ``case``.

        The upstream keeps a streamed exchange after its last write returns, on its own thread;
        the client can have the whole body through Envoy before that, so wait for it (bounded)."""
        deadline = time.monotonic() + 5.0
        exchanges = self.upstream.for_case(case)
        while not exchanges and time.monotonic() < deadline:
            time.sleep(0.01)
            exchanges = self.upstream.for_case(case)
        assert len(exchanges) == 1, exchanges
        return exchanges[0]

    def metrics(self) -> dict[str, Family]:
        return scrape(self.metrics_port)

    def output(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output(3000)}" for p in self.processes)


@contextlib.contextmanager
def running_gateway(
    upstream: OpenAIUpstream,
    log_dir: Path,
    *,
    response_body_mode: str,
    request_body_mode: str = "BUFFERED",
    picker_args: Sequence[str] = (),
) -> Iterator[Gateway]:
    """The example picker and Envoy in front of ``upstream``, stopped on exit."""
    grpc_port, metrics_port, admin_port, listener_port = free_ports(4)
    gateway = Gateway(response_body_mode, listener_port, metrics_port, upstream)
    try:
        gateway.processes.append(
            start_picker(
                log_dir,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                rewrites=REWRITES,
                extra_args=picker_args,
            )
        )
        config = render_envoy_config(
            admin_port=admin_port,
            listener_port=listener_port,
            picker_port=grpc_port,
            upstream_port=upstream.port,
            request_body_mode=request_body_mode,
            response_body_mode=response_body_mode,
        )
        gateway.processes.append(start_envoy(log_dir, config, admin_port=admin_port))
        yield gateway
    finally:
        for process in reversed(gateway.processes):
            process.stop()


@pytest.fixture(scope="module", params=BODY_MODES)
def gateway(
    request: pytest.FixtureRequest,
    upstream: OpenAIUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    mode: str = request.param
    log_dir = tmp_path_factory.mktemp(f"gateway-{mode.lower()}")
    with running_gateway(upstream, log_dir, response_body_mode=mode) as gateway:
        yield gateway


# --- reading the exposition -----------------------------------------------------------------------


def sample(
    families: dict[str, Family], family: str, suffix: str = "", **labels: str
) -> float | None:
    """A sample's value, or None when the series is not exposed."""
    found = families.get(family)
    if found is None:
        return None
    return found.samples.get((family + suffix, frozenset(labels.items())))


def pair(model: str, target: str | None = None) -> dict[str, str]:
    return {"model_name": model, "target_model_name": target or model}


def completion(model: str, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "max_tokens": max_tokens, **extra}


def chat(model: str, contents: list[str], max_tokens: int, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": c} for c in contents]
    return {"model": model, "messages": messages, "max_tokens": max_tokens, **extra}


STREAM_WITH_USAGE = {"stream": True, "stream_options": {"include_usage": True}}


# --- through Envoy, per response body mode --------------------------------------------------------


def test_json_completions_count_requests_tokens_and_exact_sizes(gateway: Gateway) -> None:
    model = "json-model"
    bodies: list[tuple[dict[str, Any], str]] = [
        (completion(model, "one two three", 3), "/v1/completions"),
        (completion(model, "four five six seven", 5), "/v1/completions"),
        (chat(model, ["hello there", "how are you"], 2), "/v1/chat/completions"),
    ]
    sent_sizes, replies, exchanges = [], [], []
    for body, path in bodies:
        data = json.dumps(body).encode()
        reply, case = gateway.send(data, path)
        assert reply.status == 200, (reply, reply.body[:200])
        sent_sizes.append(len(data))
        replies.append(reply)
        exchanges.append(gateway.exchange(case))
    # Envoy passed the bodies through unchanged.
    assert [len(r.body) for r in replies] == [e.body_size for e in exchanges]
    assert [e.request_size for e in exchanges] == sent_sizes

    metrics = gateway.metrics()
    labels = pair(model)
    assert sample(metrics, "inference_model_request_total", **labels) == 3
    assert sample(metrics, "inference_model_request_sizes", "_sum", **labels) == sum(sent_sizes)
    assert sample(metrics, "inference_model_response_sizes", "_sum", **labels) == sum(
        e.body_size for e in exchanges
    )
    assert sample(metrics, "inference_model_response_sizes", "_count", **labels) == 3
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == 3 + 4 + 5
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 3 + 5 + 2
    assert sample(metrics, "inference_model_request_duration_seconds", "_count", **labels) == 3
    assert (
        sample(
            metrics, "inference_model_normalized_time_per_output_token_seconds", "_count", **labels
        )
        == 3
    )
    # A JSON answer is not a stream: no time to first token.
    assert sample(metrics, "inference_model_request_ttft_seconds", "_count", **labels) is None
    assert sample(metrics, "inference_model_running_requests", model_name=model) == 0
    errors = metrics.get("inference_model_request_error_total")
    assert errors is None or not any(("model_name", model) in k[1] for k in errors.samples)


def test_streamed_completions_count_usage_ttft_and_tpot(gateway: Gateway) -> None:
    model = "stream-model"
    requests: list[tuple[dict[str, Any], str]] = [
        (completion(model, "a b c d e", 4, **STREAM_WITH_USAGE), "/v1/completions"),
        (chat(model, ["x y", "z"], 6, **STREAM_WITH_USAGE), "/v1/chat/completions"),
    ]
    exchanges = []
    for body, path in requests:
        reply, case = gateway.send(body, path)
        assert reply.status == 200, (reply, reply.body[:200])
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.body.endswith(b"data: [DONE]\n\n")
        exchange = gateway.exchange(case)
        assert exchange.streamed
        assert exchange.usage_sent
        assert len(reply.body) == exchange.body_size
        exchanges.append(exchange)

    metrics = gateway.metrics()
    labels = pair(model)
    assert sample(metrics, "inference_model_request_total", **labels) == 2
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == 5 + 3
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 4 + 6
    assert sample(metrics, "inference_model_response_sizes", "_sum", **labels) == sum(
        e.body_size for e in exchanges
    )
    assert sample(metrics, "inference_model_request_ttft_seconds", "_count", **labels) == 2
    assert sample(metrics, "inference_model_request_tpot_seconds", "_count", **labels) == 2
    assert sample(metrics, "inference_model_request_duration_seconds", "_count", **labels) == 2
    assert sample(metrics, "inference_model_running_requests", model_name=model) == 0


#: How many streams the OpenAI client test sends, and how long the model server lingers after
#: data: [DONE] before it ends each body (the client has closed by then).
CLIENT_STREAMS = 20
LINGER_MS = "300"


def test_openai_client_streams_are_recorded_exactly_when_the_server_lingers_after_done(
    gateway: Gateway,
) -> None:
    model = "openai-client-model"
    transport = CountingTransport()
    expected = {"prompt": 0, "completion": 0}
    seen = {"prompt": 0, "completion": 0}
    cases = []
    with openai_client(f"http://127.0.0.1:{gateway.listener_port}/v1", transport) as client:
        for i in range(CLIENT_STREAMS):
            case = uuid.uuid4().hex
            cases.append(case)
            headers = {"x-test-case": case, "x-test-linger-ms": LINGER_MS}
            words, max_tokens = " ".join(["word"] * (i % 5 + 1)), i % 4 + 2
            expected["prompt"] += i % 5 + 1
            expected["completion"] += max_tokens
            usage = stream_with_usage(
                client,
                chat=i % 2 == 1,
                model=model,
                prompt=words,
                max_tokens=max_tokens,
                headers=headers,
            )
            seen["prompt"] += usage.prompt_tokens
            seen["completion"] += usage.completion_tokens
    assert seen == expected
    received = transport.received
    assert len(received) == CLIENT_STREAMS
    if gateway.mode != "BUFFERED":
        # The client left at data: [DONE], before the model server ended the body. (BUFFERED:
        # Envoy holds the body until its end, so the client reads it whole.)
        assert not any(r.ended for r in received), received
    # What the client read is what the model server sent up to and including data: [DONE].
    assert [r.size for r in received] == [gateway.exchange(c).body_size for c in cases]

    metrics = gateway.metrics()
    labels = pair(model)
    assert sample(metrics, "inference_model_request_total", **labels) == CLIENT_STREAMS
    for family in COMPLETED:
        assert sample(metrics, family, "_count", **labels) == CLIENT_STREAMS, family
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == expected["prompt"]
    assert (
        sample(metrics, "inference_model_output_tokens", "_sum", **labels) == expected["completion"]
    )
    assert sample(metrics, "inference_model_response_sizes", "_sum", **labels) == sum(
        r.size for r in received
    )
    assert sample(metrics, "inference_model_running_requests", model_name=model) == 0
    errors = metrics.get("inference_model_request_error_total")
    assert errors is None or not any(("model_name", model) in k[1] for k in errors.samples)


def test_stream_split_mid_event_is_counted_whole(gateway: Gateway) -> None:
    model = "chunked-model"
    body = chat(model, ["one two three four"], 9, **STREAM_WITH_USAGE)
    reply, case = gateway.send(body, "/v1/chat/completions", {"x-test-chunk-bytes": "7"})
    assert reply.status == 200
    exchange = gateway.exchange(case)
    assert len(reply.body) == exchange.body_size

    metrics = gateway.metrics()
    labels = pair(model)
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == 4
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 9
    assert sample(metrics, "inference_model_response_sizes", "_sum", **labels) == exchange.body_size
    assert sample(metrics, "inference_model_request_ttft_seconds", "_count", **labels) == 1
    assert sample(metrics, "inference_model_request_tpot_seconds", "_count", **labels) == 1


def test_stream_without_include_usage_has_no_token_counts(gateway: Gateway) -> None:
    model = "no-usage-model"
    reply, case = gateway.send(completion(model, "a b c", 5, stream=True))
    assert reply.status == 200
    exchange = gateway.exchange(case)
    assert not exchange.usage_sent

    metrics = gateway.metrics()
    labels = pair(model)
    assert sample(metrics, "inference_model_request_total", **labels) == 1
    assert sample(metrics, "inference_model_response_sizes", "_sum", **labels) == exchange.body_size
    assert sample(metrics, "inference_model_request_ttft_seconds", "_count", **labels) == 1
    # Without "stream_options": {"include_usage": true} the server reports no usage at all.
    assert sample(metrics, "inference_model_input_tokens", "_count", **labels) is None
    assert sample(metrics, "inference_model_output_tokens", "_count", **labels) is None
    assert sample(metrics, "inference_model_request_tpot_seconds", "_count", **labels) is None


def test_unparsable_bodies_get_400_from_the_picker_and_count_as_bad_request(
    gateway: Gateway,
) -> None:
    bad_bodies = [b"this is not json", b'{"prompt": "no model here"}', b"[1, 2, 3]"]
    for body in bad_bodies:
        reply, case = gateway.send(body)
        assert reply.status == 400, (reply, reply.body[:200])
        assert json.loads(reply.body)["error"]["code"] == 400
        assert gateway.upstream.for_case(case) == []  # answered by the picker, never forwarded

    metrics = gateway.metrics()
    bad = {"model_name": "", "target_model_name": "", "error_code": "BadRequest"}
    assert sample(metrics, "inference_model_request_error_total", **bad) == len(bad_bodies)
    assert sample(metrics, "inference_model_request_total", **pair("")) is None


def test_model_server_errors_count_as_model_server_error_with_the_model(
    gateway: Gateway,
) -> None:
    for _ in range(2):
        reply, case = gateway.send(completion("broken-model", "a b", 3))
        assert reply.status == 500
        assert len(reply.body) == gateway.exchange(case).body_size
    reply, _ = gateway.send(
        chat("overloaded-model", ["a"], 3, **STREAM_WITH_USAGE), "/v1/chat/completions"
    )
    assert reply.status == 503

    metrics = gateway.metrics()
    for model, count in (("broken-model", 2), ("overloaded-model", 1)):
        labels = pair(model)
        assert sample(metrics, "inference_model_request_total", **labels) == count
        assert (
            sample(
                metrics,
                "inference_model_request_error_total",
                error_code="ModelServerError",
                **labels,
            )
            == count
        )
        # A failed request records no latency, sizes or tokens.
        assert sample(metrics, "inference_model_response_sizes", "_count", **labels) is None
        assert (
            sample(metrics, "inference_model_request_duration_seconds", "_count", **labels) is None
        )
        assert sample(metrics, "inference_model_running_requests", model_name=model) == 0


def test_rewritten_model_goes_upstream_and_labels_the_target(gateway: Gateway) -> None:
    request = completion("alias-model", "one two", 4)
    body = json.dumps(request).encode()
    reply, case = gateway.send(body)
    assert reply.status == 200, (reply, reply.body[:200])
    exchange = gateway.exchange(case)
    assert exchange.model == "real-model"
    assert json.loads(reply.body)["model"] == "real-model"
    # The picker re-serialised the body (compactly) and content-length followed it.
    rewritten = json.dumps({**request, "model": "real-model"}, separators=(",", ":"))
    assert exchange.request_size == len(rewritten.encode())

    metrics = gateway.metrics()
    labels = pair("alias-model", "real-model")
    assert sample(metrics, "inference_model_request_total", **labels) == 1
    assert sample(metrics, "inference_model_request_total", **pair("alias-model")) is None
    assert sample(metrics, "inference_model_request_sizes", "_sum", **labels) == len(body)
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == 2
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 4


def test_client_leaving_mid_stream_releases_the_running_request_without_error(
    gateway: Gateway,
) -> None:
    if gateway.mode == "BUFFERED":
        pytest.skip("a BUFFERED response reaches the client only whole: nothing to leave mid-way")
    model = "abandoned-model"
    body = json.dumps(completion(model, "a b", 4000, **STREAM_WITH_USAGE)).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", "/v1/completions", body, {"content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1(64)  # the stream has started
        labels = pair(model)
        running = sample(gateway.metrics(), "inference_model_running_requests", model_name=model)
        assert running == 1
    finally:
        connection.close()

    deadline = time.monotonic() + 20
    while True:
        metrics = gateway.metrics()
        if sample(metrics, "inference_model_running_requests", model_name=model) == 0:
            break
        assert time.monotonic() < deadline, f"still running\n{gateway.output()}"
        time.sleep(0.05)
    assert sample(metrics, "inference_model_request_total", **labels) == 1
    errors = metrics.get("inference_model_request_error_total")
    assert errors is None or not any(("model_name", model) in k[1] for k in errors.samples)
    assert sample(metrics, "inference_model_request_duration_seconds", "_count", **labels) is None


# --- a failing picker behind Envoy (in-process servicer) ------------------------------------------


async def test_picker_exception_counts_internal_answers_500_and_keeps_serving(
    upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    example = load_example_server()

    def pick(ctx: RequestContext) -> str | None:
        if ctx.model_name == "explode-model":
            raise RuntimeError("picker bug")
        return None

    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    server = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(
        example.ExtProcServicer(recorder, pick=pick), server
    )
    picker_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    envoy: ManagedProcess | None = None
    try:
        admin_port, listener_port = free_ports(2)
        config = render_envoy_config(
            admin_port=admin_port,
            listener_port=listener_port,
            picker_port=picker_port,
            upstream_port=upstream.port,
        )
        envoy = await asyncio.to_thread(start_envoy, tmp_path, config, admin_port=admin_port)

        async def send(model: str) -> Reply:
            body = json.dumps(completion(model, "a b c", 2)).encode()
            return await asyncio.to_thread(post, listener_port, "/v1/completions", body)

        failed = await send("explode-model")
        assert failed.status == 500, (failed, failed.body[:200])
        assert json.loads(failed.body)["error"]["type"] == "Internal"
        for _ in range(2):  # the picker keeps serving
            ok = await send("fine-model")
            assert ok.status == 200, (ok, ok.body[:200])
    finally:
        if envoy is not None:
            await asyncio.to_thread(envoy.stop)
        await server.stop(grace=1)

    metrics = parse_registry(registry)
    internal = {"model_name": "", "target_model_name": "", "error_code": "Internal"}
    assert sample(metrics, "inference_model_request_error_total", **internal) == 1
    assert sample(metrics, "inference_model_request_total", **pair("explode-model")) is None
    labels = pair("fine-model")
    assert sample(metrics, "inference_model_request_total", **labels) == 2
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 4
    assert sample(metrics, "inference_model_running_requests", model_name="explode-model") is None


# --- other request body modes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body_mode", "target"),
    [
        # The body is held until complete, then sent on whole: the rewrite applies.
        ("FULL_DUPLEX_STREAMED", "real-model"),
        # The body goes on as it comes: too late to rewrite it, so the target is the model.
        ("STREAMED", "alias-model"),
    ],
)
def test_request_body_modes_route_count_and_refuse_bad_bodies(
    upstream: OpenAIUpstream, tmp_path: Path, request_body_mode: str, target: str
) -> None:
    with running_gateway(
        upstream, tmp_path, response_body_mode="STREAMED", request_body_mode=request_body_mode
    ) as gateway:
        body = json.dumps(completion("alias-model", "one two three", 3)).encode()
        reply, case = gateway.send(body)
        assert reply.status == 200, (reply, reply.body[:200])
        assert gateway.exchange(case).model == target

        bad, bad_case = gateway.send(b"{not json")
        assert bad.status == 400
        assert gateway.upstream.for_case(bad_case) == []

        metrics = gateway.metrics()
    labels = pair("alias-model", target)
    assert sample(metrics, "inference_model_request_total", **labels) == 1
    assert sample(metrics, "inference_model_request_sizes", "_sum", **labels) == len(body)
    assert sample(metrics, "inference_model_input_tokens", "_sum", **labels) == 3
    assert sample(metrics, "inference_model_output_tokens", "_sum", **labels) == 3
    bad_labels = {"model_name": "", "target_model_name": "", "error_code": "BadRequest"}
    assert sample(metrics, "inference_model_request_error_total", **bad_labels) == 1


# --- the harness ----------------------------------------------------------------------------------


def test_envoy_that_cannot_start_fails_with_its_own_output(tmp_path: Path) -> None:
    (admin_port,) = free_ports(1)
    with pytest.raises(HarnessError, match=r"(?s)exited with code.*unknown_field_xyz"):
        start_envoy(tmp_path, "unknown_field_xyz: true\n", admin_port=admin_port)


def test_fairness_and_priority_headers_through_envoy_label_llm_d_router_metrics(
    upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    picker_args = ["--schema", "llm-d-router", "--priority-header", "x-priority"]
    with running_gateway(
        upstream, tmp_path, response_body_mode="STREAMED", picker_args=picker_args
    ) as gateway:
        model = "flow-model"
        for headers in (
            {"x-llm-d-inference-fairness-id": "tenant-a", "x-priority": "2"},
            {"x-llm-d-inference-fairness-id": "tenant-a", "x-priority": "not-a-number"},
        ):
            reply, _ = gateway.send(completion(model, "one two", 2), headers=headers)
            assert reply.status == 200, (reply, gateway.output())
        metrics = gateway.metrics()
    flow = {"model_name": model, "target_model_name": model, "fairness_id": "tenant-a"}
    assert sample(metrics, "llm_d_epp_request_total", **flow, priority="2") == 1
    assert sample(metrics, "llm_d_epp_request_total", **flow, priority="0") == 1
    assert sample(metrics, "llm_d_epp_request_running", **flow, priority="2") == 0
    ttft = "llm_d_epp_request_ttft_seconds"
    assert sample(metrics, ttft, "_count", **flow, priority="2", streaming="false") == 1


def test_the_picker_s_own_time_and_its_rewrites_are_recorded_as_upstream_records_them(
    upstream: OpenAIUpstream, tmp_path: Path
) -> None:
    picker_args = ["--schema", "llm-d-router"]
    with running_gateway(
        upstream, tmp_path, response_body_mode="STREAMED", picker_args=picker_args
    ) as gateway:
        for model in ("alias-model", "plain-model"):
            reply, _ = gateway.send(completion(model, "one two", 2))
            assert reply.status == 200, (reply, gateway.output())
        # A response's processing time is recorded when its ext_proc stream ends, which may be
        # just after the client has its reply.
        deadline = time.monotonic() + 10
        response = "llm_d_epp_response_processing_duration_seconds"
        while sample(gateway.metrics(), response, "_count") != 2:
            assert time.monotonic() < deadline, gateway.output()
            time.sleep(0.05)
        metrics = gateway.metrics()
    request = "llm_d_epp_request_processing_duration_seconds"
    assert sample(metrics, request, "_count") == 2
    assert 0 < sample(metrics, request, "_sum") < 2  # type: ignore[operator]
    assert 0 < sample(metrics, response, "_sum") < 2  # type: ignore[operator]
    rewrite = {
        "model_rewrite_name": "alias-model=real-model",
        "model_name": "alias-model",
        "target_model": "real-model",
    }
    for name in ("llm_d_epp_", "inference_extension_"):
        family = metrics[name + "model_rewrite_decisions_total"]
        assert family.samples == {(family.name, frozenset(rewrite.items())): 1.0}

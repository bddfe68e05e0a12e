"""RequestContext: what each stage of a request records (fake clock, real prometheus backend)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import ErrorCode, PrometheusBackend, Recorder, RequestContext, Usage
from tests.clocks import FakeClock
from tests.expo import Family, parse_registry


@dataclass
class Setup:
    registry: CollectorRegistry
    recorder: Recorder
    clock: FakeClock

    def ctx(self, **kwargs: Any) -> RequestContext:
        return RequestContext(self.recorder, clock=self.clock, **kwargs)

    def families(self) -> dict[str, Family]:
        return parse_registry(self.registry)


@pytest.fixture
def setup() -> Setup:
    registry = CollectorRegistry()
    return Setup(registry, Recorder(PrometheusBackend(registry)), FakeClock())


M = {"model_name": "m", "target_model_name": "t"}


def body(**fields: object) -> bytes:
    return json.dumps({"model": "m", **fields}).encode()


def chat_response(prompt: int, completion: int, cached: int = 0) -> bytes:
    usage: dict[str, object] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return json.dumps({"object": "chat.completion", "choices": [], "usage": usage}).encode()


def events(*events: object) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def sse(*last_events: object) -> bytes:
    """The last events of a stream, and its end marker."""
    return events(*last_events) + b"data: [DONE]\n\n"


def routed(setup: Setup, request: bytes | None = None) -> RequestContext:
    ctx = setup.ctx()
    ctx.on_request_headers({})
    assert ctx.on_request_body(request or body(), end_of_stream=True)
    ctx.route("t")
    return ctx


# --- request stage ----------------------------------------------------------------------------


def test_accepted_body_sets_model_size_and_parsed_request(setup: Setup) -> None:
    ctx = setup.ctx()
    raw = body(stream=True)
    assert ctx.on_request_body(raw[:5], end_of_stream=False)
    assert ctx.on_request_body(raw[5:], end_of_stream=True)
    assert (ctx.model_name, ctx.request_size) == ("m", len(raw))
    assert ctx.request == {"model": "m", "stream": True}


def test_accepted_body_records_nothing_before_route(setup: Setup) -> None:
    ctx = setup.ctx()
    assert ctx.on_request_body(body(), end_of_stream=True)
    assert setup.families() == {}


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1]", b'{"model": 3}', b'{"model": ""}', b'{"prompt": "x"}', b"", b"\xff{"],
)
def test_malformed_body_fails_as_bad_request_with_empty_labels(setup: Setup, raw: bytes) -> None:
    ctx = setup.ctx()
    assert ctx.on_request_body(raw, end_of_stream=True) is False
    assert ctx.finished
    assert ctx.error_code == ErrorCode.BAD_REQUEST
    errors = setup.families()["inference_model_request_error_total"]
    labels = {"model_name": "", "target_model_name": "", "error_code": "BadRequest"}
    assert errors.samples == {("inference_model_request_error_total", frozenset(labels.items())): 1}


def test_model_name_too_long_for_a_label_fails_as_bad_request(setup: Setup) -> None:
    ctx = RequestContext(
        Recorder(PrometheusBackend(CollectorRegistry()), max_label_length=12), clock=setup.clock
    )
    assert ctx.on_request_body(b'{"model": "1234567890123"}', end_of_stream=True) is False
    assert ctx.error_code == ErrorCode.BAD_REQUEST


def test_body_beyond_max_size_fails_at_the_chunk_that_crosses_it(setup: Setup) -> None:
    ctx = setup.ctx(max_body_size=10)
    assert ctx.on_request_body(b'{"model":', end_of_stream=False)
    assert ctx.on_request_body(b'"m"}', end_of_stream=False) is False
    assert ctx.error_code == ErrorCode.BAD_REQUEST
    assert ctx.on_request_body(b"", end_of_stream=True) is False


def test_route_records_request_total_size_and_running(setup: Setup) -> None:
    raw = body()
    routed(setup, raw)
    fams = setup.families()
    assert fams["inference_model_request_total"].value("inference_model_request_total", **M) == 1
    sizes = fams["inference_model_request_sizes"]
    assert sizes.value("inference_model_request_sizes_sum", **M) == len(raw)
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 1


def test_route_without_target_uses_the_model_name(setup: Setup) -> None:
    ctx = setup.ctx()
    ctx.on_request_body(body(), end_of_stream=True)
    ctx.route()
    assert ctx.target_model_name == "m"


def test_route_twice_counts_once(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.route("t")
    total = setup.families()["inference_model_request_total"]
    assert total.value("inference_model_request_total", **M) == 1


def test_route_before_the_model_is_known_records_nothing(setup: Setup) -> None:
    ctx = setup.ctx()
    ctx.route("t")
    assert not ctx.routed
    assert setup.families() == {}


def test_on_request_after_route_changes_neither_the_model_nor_running_requests(
    setup: Setup,
) -> None:
    ctx = routed(setup)
    for _ in range(3):
        assert ctx.on_request("other") is False
    assert ctx.model_name == "m"
    setup.clock.advance(1)
    ctx.on_response_body(chat_response(1, 1), end_of_stream=True)
    fams = setup.families()
    running = fams["inference_model_running_requests"]
    assert running.samples == {
        ("inference_model_running_requests", frozenset({("model_name", "m")})): 0.0
    }
    duration = fams["inference_model_request_duration_seconds"]
    assert {
        (dict(labels)["model_name"], dict(labels)["target_model_name"])
        for _, labels in duration.samples
    } == {("m", "t")}


# --- successful completion --------------------------------------------------------------------


def test_json_response_records_latency_size_and_tokens(setup: Setup) -> None:
    ctx = routed(setup)
    response = chat_response(10, 4, cached=6)
    ctx.on_response_headers({":status": "200", "content-type": "application/json"})
    setup.clock.advance(0.5)
    ctx.on_response_body(response[:7], end_of_stream=False)
    ctx.on_response_body(response[7:], end_of_stream=True)
    fams = setup.families()

    def total(name: str) -> float:
        return fams[name].value(name + "_sum", **M)

    assert total("inference_model_request_duration_seconds") == 0.5
    assert total("inference_model_response_sizes") == len(response)
    assert total("inference_model_input_tokens") == 10
    assert total("inference_model_output_tokens") == 4
    assert total("inference_model_prompt_cached_tokens") == 6
    assert total("inference_model_normalized_time_per_output_token_seconds") == 0.125
    assert ctx.usage == Usage(10, 4, 6)


def usage_body(**usage: object) -> bytes:
    return json.dumps({"choices": [], "usage": {"prompt_tokens": 5, **usage}}).encode()


def test_a_cached_token_count_of_zero_is_observed(setup: Setup) -> None:
    ctx = routed(setup)
    setup.clock.advance(1)
    ctx.on_response_body(usage_body(prompt_tokens_details={"cached_tokens": 0}), end_of_stream=True)
    cached = setup.families()["inference_model_prompt_cached_tokens"]
    assert cached.value("inference_model_prompt_cached_tokens_count", **M) == 1
    assert cached.value("inference_model_prompt_cached_tokens_sum", **M) == 0


@pytest.mark.parametrize("details", [None, {"audio_tokens": 0}])
def test_a_usage_without_a_cached_token_count_observes_none(setup: Setup, details: object) -> None:
    ctx = routed(setup)
    setup.clock.advance(1)
    ctx.on_response_body(usage_body(prompt_tokens_details=details), end_of_stream=True)
    families = setup.families()
    assert "inference_model_input_tokens" in families
    assert "inference_model_prompt_cached_tokens" not in families


def test_non_streamed_response_records_no_ttft_or_tpot(setup: Setup) -> None:
    ctx = routed(setup)
    setup.clock.advance(1)
    ctx.on_response_body(chat_response(1, 5), end_of_stream=True)
    fams = setup.families()
    assert "inference_model_request_ttft_seconds" not in fams
    assert "inference_model_request_tpot_seconds" not in fams


def test_sse_response_records_ttft_and_tpot(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers([(":status", "200"), ("content-type", "text/event-stream")])
    setup.clock.advance(0.25)
    ctx.on_response_body(events({"choices": [{"delta": {"content": "a"}}]}), end_of_stream=False)
    setup.clock.advance(1.0)
    last = sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}})
    ctx.on_response_body(last, end_of_stream=True)
    fams = setup.families()
    ttft = fams["inference_model_request_ttft_seconds"]
    assert ttft.value("inference_model_request_ttft_seconds_sum", **M) == 0.25
    tpot = fams["inference_model_request_tpot_seconds"]
    assert tpot.value("inference_model_request_tpot_seconds_sum", **M) == 0.25  # 1.0 / (5 - 1)
    out = fams["inference_model_output_tokens"]
    assert out.value("inference_model_output_tokens_sum", **M) == 5


def test_sse_is_detected_without_a_content_type(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_body(b"da", end_of_stream=False)
    ctx.on_response_body(
        b'ta: {"usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\n', end_of_stream=True
    )
    assert ctx.streamed
    assert ctx.usage == Usage(2, 3)


def test_tpot_is_not_recorded_for_a_single_output_token(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({"content-type": "text/event-stream"})
    setup.clock.advance(1)
    ctx.on_response_body(
        sse({"usage": {"prompt_tokens": 3, "completion_tokens": 1}}), end_of_stream=True
    )
    fams = setup.families()
    assert "inference_model_request_ttft_seconds" in fams
    assert "inference_model_request_tpot_seconds" not in fams


def test_response_without_usage_records_no_tokens(setup: Setup) -> None:
    ctx = routed(setup)
    setup.clock.advance(1)
    ctx.on_response_body(b'{"choices": []}', end_of_stream=True)
    fams = setup.families()
    assert "inference_model_input_tokens" not in fams
    assert "inference_model_output_tokens" not in fams
    assert "inference_model_normalized_time_per_output_token_seconds" not in fams
    assert "inference_model_request_duration_seconds" in fams


def test_finish_decrements_running_requests(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_body(b"{}", end_of_stream=True)
    running = setup.families()["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


def test_finish_twice_records_once(setup: Setup) -> None:
    ctx = routed(setup)
    setup.clock.advance(1)
    ctx.on_response_body(b"{}", end_of_stream=True)
    ctx.finish()
    ctx.fail(ErrorCode.INTERNAL)
    fams = setup.families()
    duration = fams["inference_model_request_duration_seconds"]
    assert duration.value("inference_model_request_duration_seconds_count", **M) == 1
    assert "inference_model_request_error_total" not in fams
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


def test_unparseable_json_response_counts_a_parse_failure_and_completes(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({"content-type": "application/json"})
    setup.clock.advance(1)
    ctx.on_response_body(b'{"usage": ', end_of_stream=True)
    assert ctx.response_parse_failed
    assert setup.recorder.response_parse_failures == 1
    sizes = setup.families()["inference_model_response_sizes"]
    assert sizes.value("inference_model_response_sizes_sum", **M) == 10


# --- failures ---------------------------------------------------------------------------------


def test_error_status_ends_as_model_server_error_with_model_labels(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({":status": "503"})
    assert ctx.error_code == ErrorCode.MODEL_SERVER_ERROR
    assert not ctx.finished
    ctx.on_response_body(b'{"error": "overloaded"}', end_of_stream=True)
    errors = setup.families()["inference_model_request_error_total"]
    name = "inference_model_request_error_total"
    assert errors.value(name, error_code="ModelServerError", **M) == 1


def test_failed_request_records_no_latency_sizes_or_tokens(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({":status": "500"})
    setup.clock.advance(1)
    ctx.on_response_body(chat_response(3, 3), end_of_stream=True)
    fams = setup.families()
    for name in (
        "inference_model_request_duration_seconds",
        "inference_model_response_sizes",
        "inference_model_input_tokens",
    ):
        assert name not in fams


def test_status_header_without_colon_is_accepted(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({"status": "404"})
    assert ctx.error_code == ErrorCode.MODEL_SERVER_ERROR


@dataclass
class HeaderValue:
    key: str
    value: str = ""
    raw_value: bytes = b""


def test_envoy_header_values_are_read_from_raw_value(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers([HeaderValue(":status", raw_value=b"429")])
    assert ctx.error_code == ErrorCode.MODEL_SERVER_ERROR


def test_envoy_header_values_fall_back_to_value(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers([HeaderValue(":status", value="200"), HeaderValue("x", value="y")])
    assert ctx.error_code is None


def test_fail_before_route_counts_with_empty_labels(setup: Setup) -> None:
    ctx = setup.ctx()
    ctx.on_request_body(body(), end_of_stream=True)
    ctx.fail(ErrorCode.RESOURCE_EXHAUSTED)
    errors = setup.families()["inference_model_request_error_total"]
    name = "inference_model_request_error_total"
    value = errors.value(name, model_name="", target_model_name="", error_code="ResourceExhausted")
    assert value == 1


def test_first_failure_wins_and_counts_once(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_headers({":status": "500"})
    ctx.fail(ErrorCode.INTERNAL)
    ctx.fail(ErrorCode.BAD_REQUEST)
    ctx.finish()
    errors = setup.families()["inference_model_request_error_total"]
    assert errors.samples == {
        (
            "inference_model_request_error_total",
            frozenset({**M, "error_code": "ModelServerError"}.items()),
        ): 1
    }


@pytest.mark.parametrize("code", ["", None, 5])
def test_failure_without_a_usable_code_counts_as_unknown(setup: Setup, code: object) -> None:
    ctx = routed(setup)
    ctx.fail(code)  # type: ignore[arg-type]
    assert ctx.error_code == ErrorCode.UNKNOWN


def test_failure_with_a_custom_code_string_is_counted_with_it(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.fail("Timeout")
    errors = setup.families()["inference_model_request_error_total"]
    assert errors.value("inference_model_request_error_total", error_code="Timeout", **M) == 1


def test_fail_decrements_running_requests(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.fail(ErrorCode.INTERNAL)
    running = setup.families()["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


def test_cancel_only_decrements_running_requests(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.cancel()
    fams = setup.families()
    assert set(fams) == {
        "inference_model_request_total",
        "inference_model_request_sizes",
        "inference_model_running_requests",
    }
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


# --- context manager --------------------------------------------------------------------------


def test_context_manager_finishes_on_exit(setup: Setup) -> None:
    with setup.ctx() as ctx:
        ctx.on_request_body(body(), end_of_stream=True)
        ctx.route("t")
    assert ctx.finished
    assert ctx.error_code is None


def test_context_manager_fails_as_internal_and_reraises(setup: Setup) -> None:
    ctx = setup.ctx()
    ctx.on_request_body(body(), end_of_stream=True)
    error = KeyError("boom")

    def handler() -> None:
        with ctx:
            ctx.route("t")
            raise error

    with pytest.raises(KeyError) as raised:
        handler()
    assert raised.value is error
    assert ctx.error_code == ErrorCode.INTERNAL


async def test_async_context_manager_finishes_on_exit(setup: Setup) -> None:
    async with setup.ctx() as ctx:
        ctx.on_request_body(body(), end_of_stream=True)
        ctx.route("t")
    assert ctx.finished
    assert ctx.error_code is None


# --- error codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.RESOURCE_EXHAUSTED, 429),
        (ErrorCode.INFERENCE_POOL_RESOURCE_EXHAUSTED, 429),
        (ErrorCode.INTERNAL, 500),
        (ErrorCode.BAD_REQUEST, 400),
        (ErrorCode.SERVICE_UNAVAILABLE, 503),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.UNAUTHORIZED, 401),
        (ErrorCode.FORBIDDEN, 403),
        (ErrorCode.MODEL_SERVER_ERROR, 500),
        (ErrorCode.UNKNOWN, 500),
        (ErrorCode.BAD_CONFIGURATION, 500),
    ],
)
def test_error_code_http_status(code: ErrorCode, status: int) -> None:
    assert code.http_status == status


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, None),
        (302, None),
        (400, ErrorCode.BAD_REQUEST),
        (401, ErrorCode.UNAUTHORIZED),
        (404, ErrorCode.NOT_FOUND),
        (422, ErrorCode.BAD_REQUEST),
        (429, ErrorCode.RESOURCE_EXHAUSTED),
        (500, ErrorCode.INTERNAL),
        (502, ErrorCode.INTERNAL),
        (503, ErrorCode.SERVICE_UNAVAILABLE),
    ],
)
def test_error_code_from_http_status(status: int, code: ErrorCode | None) -> None:
    assert ErrorCode.from_http_status(status) == code


# --- admitted before the target is known ------------------------------------------------------


def admitted(setup: Setup) -> RequestContext:
    ctx = setup.ctx()
    assert ctx.on_request_body(body(), end_of_stream=True)
    ctx.admit()
    return ctx


def test_admit_counts_the_request_running_before_its_target_is_known(setup: Setup) -> None:
    admitted(setup)
    fams = setup.families()
    assert set(fams) == {"inference_model_running_requests"}
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 1


def test_admitted_request_is_routed_at_its_end_to_the_model_its_response_names(
    setup: Setup,
) -> None:
    ctx = admitted(setup)
    setup.clock.advance(1)
    response = json.dumps({"model": "served", "usage": {"completion_tokens": 2}}).encode()
    ctx.on_response_body(response, end_of_stream=True)
    fams = setup.families()
    served = {"model_name": "m", "target_model_name": "served"}
    assert fams["inference_model_request_total"].value("inference_model_request_total", **served)
    output = fams["inference_model_output_tokens"]
    assert output.value("inference_model_output_tokens_sum", **served) == 2
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


def test_admitted_request_cancelled_before_a_response_is_routed_to_its_own_model(
    setup: Setup,
) -> None:
    ctx = admitted(setup)
    ctx.cancel()
    fams = setup.families()
    own = {"model_name": "m", "target_model_name": "m"}
    assert fams["inference_model_request_total"].value("inference_model_request_total", **own) == 1
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


def test_streamed_response_names_its_model_in_its_first_event(setup: Setup) -> None:
    ctx = admitted(setup)
    ctx.on_response_headers({"content-type": "text/event-stream"})
    ctx.on_response_body(b'data: {"model": "served", "choices": []}\n\n', end_of_stream=False)
    assert ctx.response_model == "served"


def test_a_second_response_part_makes_the_response_a_stream(setup: Setup) -> None:
    ctx = routed(setup)
    ctx.on_response_part(size=1)
    assert not ctx.streamed
    ctx.on_response_part(size=1)
    assert ctx.streamed

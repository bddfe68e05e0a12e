"""The request lifecycle's fairness id, priority, streaming flag and running target, seen in a
real prometheus_client exposition under ``schema="llm-d-router"``."""

from __future__ import annotations

import json

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder, RequestContext
from inference_metrics.instrument import instrument_handler, start_request
from inference_metrics.lifecycle import parse_priority
from tests.clocks import FakeClock
from tests.expo import Family, parse_registry

FAIRNESS = "x-llm-d-inference-fairness-id"
BODY = json.dumps({"model": "m"}).encode()
CHAT = json.dumps(
    {"object": "chat.completion", "model": "m", "choices": [], "usage": {"completion_tokens": 3}}
).encode()


class World:
    def __init__(self, max_fairness_ids: int = 100) -> None:
        self.registry = CollectorRegistry()
        self.recorder = Recorder(
            PrometheusBackend(self.registry),
            schema="llm-d-router",
            max_fairness_ids=max_fairness_ids,
        )
        self.clock = FakeClock()

    def ctx(self, headers: object, *, priority_header: str | None = "x-priority") -> RequestContext:
        ctx = RequestContext(self.recorder, clock=self.clock, priority_header=priority_header)
        ctx.on_request_headers(headers)
        assert ctx.on_request_body(BODY, end_of_stream=True)
        return ctx

    def families(self) -> dict[str, Family]:
        return parse_registry(self.registry)

    def labelled(
        self, name: str, sample: str | None = None
    ) -> dict[frozenset[tuple[str, str]], float]:
        family = self.families()[name]
        wanted = sample or name
        return {labels: value for (s, labels), value in family.samples.items() if s == wanted}


def flow_of(labels: frozenset[tuple[str, str]]) -> tuple[str, str]:
    as_dict = dict(labels)
    return as_dict["fairness_id"], as_dict["priority"]


@pytest.fixture
def world() -> World:
    return World()


def test_the_fairness_id_and_priority_headers_label_every_request_metric(world: World) -> None:
    ctx = world.ctx([(FAIRNESS.upper(), "tenant-a"), ("X-Priority", b"-2")])
    ctx.route("t")
    world.clock.now += 1.5
    ctx.on_response_headers({":status": "200", "content-type": "application/json"})
    ctx.on_response_body(CHAT, end_of_stream=True)
    for name, sample in (
        ("llm_d_epp_request_total", None),
        ("llm_d_epp_request_duration_seconds", "llm_d_epp_request_duration_seconds_count"),
        ("llm_d_epp_request_ttft_seconds", "llm_d_epp_request_ttft_seconds_count"),
        ("llm_d_epp_request_running", None),
    ):
        assert {flow_of(labels) for labels in world.labelled(name, sample)} == {
            ("tenant-a", "-2")
        }, name
    # The legacy twin keeps only its own labels (priority on request_total).
    assert world.labelled("inference_objective_request_total") == {
        frozenset({"model_name": "m", "target_model_name": "t", "priority": "-2"}.items()): 1.0
    }


def test_a_failed_request_is_counted_under_its_fairness_id_and_priority(world: World) -> None:
    ctx = world.ctx({FAIRNESS: "tenant-b", "x-priority": "7"})
    ctx.route("t")
    ctx.on_response_headers({":status": "503"}, end_of_stream=True)
    [(labels, count)] = world.labelled("llm_d_epp_request_error_total").items()
    assert (flow_of(labels), dict(labels)["error_code"], count) == (
        ("tenant-b", "7"),
        "ModelServerError",
        1.0,
    )


def test_the_deprecated_fairness_header_is_read_and_the_current_one_wins(world: World) -> None:
    old = world.ctx({"x-gateway-inference-fairness-id": "legacy"})
    both = world.ctx([("x-gateway-inference-fairness-id", "legacy"), (FAIRNESS, "current")])
    assert (old.fairness_id, both.fairness_id) == ("legacy", "current")


@pytest.mark.parametrize(
    ("fairness", "priority"),
    [
        (b"\xff\xfe", "high"),  # not UTF-8; not a number
        ("", "1.5"),  # empty; not an integer
        ("x" * 2000, str(2**63)),  # beyond max_label_length; beyond a 64-bit int
        ("ok", "\u0661"),  # an Arabic-Indic digit is not ASCII
    ],
)
def test_unusable_header_values_are_recorded_as_the_defaults(
    world: World, fairness: object, priority: str
) -> None:
    ctx = world.ctx({FAIRNESS: fairness, "x-priority": priority})
    ctx.route("t")
    ctx.finish()
    expected_fairness = "ok" if fairness == "ok" else "default-flow"
    assert {flow_of(labels) for labels in world.labelled("llm_d_epp_request_total")} == {
        (expected_fairness, "0")
    }


def test_without_a_priority_header_configured_the_priority_is_the_default(world: World) -> None:
    ctx = world.ctx({"x-priority": "5"}, priority_header=None)
    assert ctx.priority == 0
    assert ctx.set_flow(priority="5")
    assert ctx.priority == 5


def test_the_flow_is_fixed_once_the_request_runs(world: World) -> None:
    ctx = world.ctx({FAIRNESS: "a"})
    ctx.admit()
    assert ctx.set_flow(fairness_id="b", priority=3) is False
    ctx.read_flow_headers({FAIRNESS: "c"})
    assert (ctx.fairness_id, ctx.priority) == ("a", 0)


def test_distinct_fairness_ids_beyond_the_bound_fold_into_the_overflow() -> None:
    world = World(max_fairness_ids=3)
    for index in range(10):
        ctx = world.ctx({FAIRNESS: f"tenant-{index}"})
        ctx.route("t")
        ctx.cancel()
    ids = {flow_of(labels)[0] for labels in world.labelled("llm_d_epp_request_total")}
    assert ids == {"tenant-0", "tenant-1", "tenant-2", "__overflow__"}


def answered(world: World, content_type: str, body: bytes) -> None:
    """A request routed to "t" and answered 2 s later with ``body`` of ``content_type``."""
    ctx = world.ctx({})
    ctx.route("t")
    world.clock.now += 2.0
    ctx.on_response_headers({":status": "200", "content-type": content_type})
    ctx.on_response_body(body, end_of_stream=True)


def test_a_non_streamed_response_records_ttft_equal_to_the_duration_as_not_streaming(
    world: World,
) -> None:
    answered(world, "application/json", CHAT)
    ttft = world.labelled("llm_d_epp_request_ttft_seconds", "llm_d_epp_request_ttft_seconds_sum")
    assert {dict(labels)["streaming"]: value for labels, value in ttft.items()} == {"false": 2.0}


def test_a_streamed_response_without_a_body_chunk_records_no_not_streaming_ttft(
    world: World,
) -> None:
    answered(world, "text/event-stream", b"")
    assert "llm_d_epp_request_ttft_seconds" not in world.families()
    assert world.labelled(
        "llm_d_epp_request_duration_seconds", "llm_d_epp_request_duration_seconds_count"
    )


def test_the_running_gauge_moves_to_the_target_named_at_routing_and_returns_to_zero(
    world: World,
) -> None:
    ctx = world.ctx({FAIRNESS: "a"})
    ctx.admit()
    running = world.labelled("llm_d_epp_request_running")
    assert {dict(labels)["target_model_name"]: value for labels, value in running.items()} == {
        "": 1.0
    }
    ctx.route("m-lora")
    running = world.labelled("llm_d_epp_request_running")
    assert {dict(labels)["target_model_name"]: value for labels, value in running.items()} == {
        "": 0.0,
        "m-lora": 1.0,
    }
    assert world.labelled("inference_objective_running_requests") == {
        frozenset({("model_name", "m")}): 1.0
    }
    ctx.finish()
    assert set(world.labelled("llm_d_epp_request_running").values()) == {0.0}
    assert set(world.labelled("inference_objective_running_requests").values()) == {0.0}


def test_an_admitted_request_ending_unrouted_lowers_the_gauge_it_raised(world: World) -> None:
    ctx = world.ctx({})
    ctx.admit()
    ctx.on_response_headers({":status": "200", "content-type": "application/json"})
    ctx.on_response_body(json.dumps({"model": "served-as"}).encode(), end_of_stream=True)
    running = world.labelled("llm_d_epp_request_running")
    assert {dict(labels)["target_model_name"]: value for labels, value in running.items()} == {
        "": 0.0
    }
    totals = world.labelled("llm_d_epp_request_total")
    assert {dict(labels)["target_model_name"] for labels in totals} == {"served-as"}


def test_an_admitted_stream_runs_under_the_model_its_first_event_names(world: World) -> None:
    ctx = world.ctx({})
    ctx.admit()
    ctx.on_response_headers({":status": "200", "content-type": "text/event-stream"})
    event = {"model": "served-as", "choices": [{"delta": {"content": "a"}}]}
    ctx.on_response_body(b"data: " + json.dumps(event).encode() + b"\n\n", end_of_stream=False)
    running = world.labelled("llm_d_epp_request_running")
    assert {dict(labels)["target_model_name"]: value for labels, value in running.items()} == {
        "": 0.0,
        "served-as": 1.0,
    }
    ctx.on_response_body(b"data: [DONE]\n\n", end_of_stream=True)
    assert set(world.labelled("llm_d_epp_request_running").values()) == {0.0}
    totals = world.labelled("llm_d_epp_request_total")
    assert list(totals.values()) == [1.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (" -4 ", -4),
        ("+9", 9),
        (b"12", 12),
        (True, None),
        (2.0, None),
        ("", None),
        ("1e3", None),
        (b"\xff", None),
        (-(2**63), -(2**63)),
        (2**63, None),
    ],
)
def test_parse_priority_takes_integers_and_their_decimal_text_only(
    value: object, expected: int | None
) -> None:
    assert parse_priority(value) == expected


def test_start_request_labels_the_request_with_its_fairness_id_and_priority(world: World) -> None:
    with start_request(world.recorder, "m", "t", fairness_id="tenant-c", priority="4"):
        pass
    assert {flow_of(labels) for labels in world.labelled("llm_d_epp_request_total")} == {
        ("tenant-c", "4")
    }


def test_the_decorator_takes_fairness_id_and_priority_from_the_handlers_arguments(
    world: World,
) -> None:
    @instrument_handler(
        world.recorder,
        model="body",
        fairness_id="tenant",
        priority=lambda body, tenant: 9 if tenant == "gold" else "not a number",
        clock=world.clock,
    )
    def handle(body: dict[str, str], tenant: str) -> bytes:
        return CHAT

    handle({"model": "m"}, "gold")
    handle({"model": "m"}, b"\xff")  # type: ignore[arg-type]
    assert {flow_of(labels) for labels in world.labelled("llm_d_epp_request_total")} == {
        ("gold", "9"),
        ("default-flow", "0"),
    }


def test_a_request_failing_before_it_is_routed_is_counted_under_the_default_flow(
    world: World,
) -> None:
    ctx = RequestContext(world.recorder, clock=world.clock, priority_header="x-priority")
    ctx.on_request_headers({FAIRNESS: "tenant-a", "x-priority": "5"})
    assert ctx.on_request_body(b"not json", end_of_stream=True) is False
    [(labels, count)] = world.labelled("llm_d_epp_request_error_total").items()
    assert dict(labels) == {
        "model_name": "",
        "target_model_name": "",
        "fairness_id": "default-flow",
        "priority": "0",
        "error_code": "BadRequest",
    }
    assert count == 1

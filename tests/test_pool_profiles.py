"""Engine profiles: every built-in engine's page read into the numbers upstream reads from it,
and selectors in upstream's syntax."""

from __future__ import annotations

import pytest

from inference_metrics.pool import PROFILES, EngineProfile, Selector, extract, read_families

from .model_servers import PAGES, Load, vllm_page

LOAD = Load(queue=3, running=5, kv_cache=0.25)


@pytest.mark.parametrize("engine", sorted(PAGES))
def test_every_engine_page_gives_its_queue_and_running(engine: str) -> None:
    reading = extract(
        PROFILES[engine], read_families(PAGES[engine]([LOAD]).encode(), PROFILES[engine].families)
    )
    assert (reading.queue, reading.running) == (3.0, 5.0)
    assert reading.problems == ()


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm-serve", "triton-trtllm"])
def test_llm_engines_give_their_kv_cache_utilisation(engine: str) -> None:
    profile = PROFILES[engine]
    reading = extract(profile, read_families(PAGES[engine]([LOAD]).encode(), profile.families))
    assert reading.kv_cache == 0.25


def test_triton_has_no_kv_cache_number() -> None:
    profile = PROFILES["triton"]
    reading = extract(profile, read_families(PAGES["triton"]([LOAD]).encode(), profile.families))
    assert reading.kv_cache is None
    assert reading.problems == ()


@pytest.mark.parametrize(
    ("engine", "block_size", "num_blocks"),
    [
        ("vllm", 16, 27823),
        ("sglang", 64, 4096),
        ("trtllm-serve", 32, 9000),
        ("triton-trtllm", 64, 9000),
    ],
)
def test_cache_geometry_is_read_where_the_engine_exposes_it(
    engine: str, block_size: int, num_blocks: int
) -> None:
    profile = PROFILES[engine]
    reading = extract(profile, read_families(PAGES[engine]([LOAD]).encode(), profile.families))
    assert (reading.block_size, reading.num_blocks) == (block_size, num_blocks)


def test_vllm_falls_back_to_the_deprecated_gpu_cache_usage_perc() -> None:
    page = vllm_page([Load(kv_cache=0.75)], deprecated_kv=True)
    profile = PROFILES["vllm"]
    reading = extract(profile, read_families(page.encode(), profile.families))
    assert reading.kv_cache == 0.75
    assert reading.problems == ()


def test_vllm_lora_adapters_come_from_the_newest_info_series() -> None:
    engines = [
        Load(running_adapters=("old",), max_adapters=2),
        Load(running_adapters=("sql-lora", "chat-lora"), waiting_adapters=("x",), max_adapters=4),
    ]
    profile = PROFILES["vllm"]
    reading = extract(profile, read_families(vllm_page(engines).encode(), profile.families))
    assert reading.running_adapters == ("sql-lora", "chat-lora")
    assert reading.waiting_adapters == ("x",)
    assert reading.max_adapters == 4


def test_several_engines_per_pod_read_the_first_series_as_upstream() -> None:
    # Upstream keeps the matching series with the newest timestamp; the text format has none,
    # so the first one on the page wins (data-parallel rank 0).
    page = vllm_page(
        [Load(queue=7, running=1, kv_cache=0.1), Load(queue=1, running=9, kv_cache=0.9)]
    )
    profile = PROFILES["vllm"]
    reading = extract(profile, read_families(page.encode(), profile.families))
    assert (reading.queue, reading.running, reading.kv_cache) == (7.0, 1.0, 0.1)


def test_a_missing_family_is_a_problem_and_the_others_are_still_read() -> None:
    page = vllm_page([LOAD]).replace("vllm:num_requests_running", "vllm:renamed")
    profile = PROFILES["vllm"]
    reading = extract(profile, read_families(page.encode(), profile.families))
    assert reading.running is None
    assert (reading.queue, reading.kv_cache) == (3.0, 0.25)
    assert reading.problems == ("running: vllm:num_requests_running is missing",)
    assert reading.updated


def test_a_family_of_the_wrong_type_is_a_problem() -> None:
    page = vllm_page([LOAD], queue_type="histogram")
    profile = PROFILES["vllm"]
    reading = extract(profile, read_families(page.encode(), profile.families))
    assert reading.queue is None
    assert reading.problems == (
        "queue: vllm:num_requests_waiting is a histogram, not a gauge or counter",
    )


@pytest.mark.parametrize("value", ["-1", "NaN", "+Inf"])
def test_a_negative_or_non_finite_value_is_a_problem(value: str) -> None:
    page = f"vllm:num_requests_waiting {value}\n".encode()
    profile = EngineProfile.custom("x", queue="vllm:num_requests_waiting")
    reading = extract(profile, read_families(page, profile.families))
    assert reading.queue is None
    assert len(reading.problems) == 1
    assert not reading.updated


def test_selectors_read_upstreams_syntax_with_or_without_quotes() -> None:
    assert Selector.parse('nv_trt_llm_request_metrics{request_type="waiting"}') == Selector(
        "nv_trt_llm_request_metrics", (("request_type", "waiting"),)
    )
    assert Selector.parse('m{a=b, c = "d,e"}') == Selector("m", (("a", "b"), ("c", "d,e")))
    assert Selector.parse("  vllm:num_requests_waiting ") == Selector("vllm:num_requests_waiting")
    assert str(Selector.parse("m{a=b}")) == 'm{a="b"}'


@pytest.mark.parametrize("text", ["", "9bad", "m{", "m{a}", 'm{a="b"', 'm{a=~"b"}', "a b"])
def test_a_bad_selector_is_a_value_error_naming_the_argument_and_text(text: str) -> None:
    with pytest.raises(ValueError, match="queue") as info:
        EngineProfile.custom("mine", queue=text)
    assert repr(text) in str(info.value)


def test_a_custom_profile_overrides_only_what_it_names() -> None:
    profile = EngineProfile.custom(
        "my-vllm", queue='vllm:num_requests_waiting{engine="1"}', base=PROFILES["vllm"]
    )
    page = vllm_page([Load(queue=7), Load(queue=2, kv_cache=0.5)])
    reading = extract(profile, read_families(page.encode(), profile.families))
    assert reading.queue == 2.0
    assert profile.kv_cache == PROFILES["vllm"].kv_cache


def test_a_selector_matching_no_series_is_a_problem() -> None:
    profile = EngineProfile.custom("x", queue='vllm:num_requests_waiting{engine="5"}')
    reading = extract(profile, read_families(vllm_page([LOAD]).encode(), profile.families))
    assert reading.problems == ('queue: no series matches vllm:num_requests_waiting{engine="5"}',)

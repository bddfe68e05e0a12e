"""The prometheus-client backend: registries, name clashes, no ``_created``, prometheus_client's
process-wide settings left alone, Go-like absent families, escaping, and promtool's verdict."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client
import prometheus_client.metrics
import pytest
from prometheus_client import Counter, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.registry import REGISTRY, CollectorRegistry

from inference_metrics import (
    CATALOG,
    Kind,
    MetricSpec,
    PrometheusBackend,
    Recorder,
)
from inference_metrics.backends import UnsupportedOperation
from inference_metrics.simulate import simulate_pools, simulate_request

from . import upstream_facts as up
from .expo import parse_registry, parse_text

ROOT = Path(__file__).resolve().parent.parent


def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None
    )
    if found is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; see .ci/setup)")
    return found


def openmetrics_text(registry: CollectorRegistry) -> str:
    data: bytes = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    return data.decode("utf-8")


def parse_openmetrics(text: str) -> list[Any]:
    parse = openmetrics_parser.text_string_to_metric_families
    return list(parse(text))  # type: ignore[no-untyped-call]


def check_metrics(exposition: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=exposition.decode("utf-8"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def every_metric(recorder: Recorder, *, requests: int = 200, seed: int = 7) -> None:
    """Simulated traffic plus the calls simulate does not make: every catalogue metric gets data."""
    rng = random.Random(seed)
    for i in range(requests):
        simulate_request(recorder, rng, 1000.0 + i)
    simulate_pools(recorder, rng)
    recorder.record_extension_info("0123abc", "v0.1.0")
    recorder.record_request_completed(
        "llama-3-8b",
        "llama-3-8b",
        received=10.0,
        completed=12.5,
        response_size=4096,
        input_tokens=500,
        output_tokens=200,
        cached_tokens=128,
        first_token=10.3,
    )
    recorder.record_running_request_started("llama-3-8b")


# --- registries --------------------------------------------------------------------------------


def test_two_recorders_on_two_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    a = Recorder(PrometheusBackend(first))
    b = Recorder(PrometheusBackend(second))
    a.record_request_counter("m", "t")
    assert generate_latest(second) == b""
    b.record_request_counter("m", "t")
    b.record_request_counter("m", "t")
    b.record_pool_queue_size("p", 3)
    one, two = parse_registry(first), parse_registry(second)
    assert set(one) == {up.REQUEST_TOTAL}
    assert set(two) == {up.REQUEST_TOTAL, up.POOL_QUEUE_SIZE}
    labels = {"model_name": "m", "target_model_name": "t"}
    assert one[up.REQUEST_TOTAL].value(up.REQUEST_TOTAL, **labels) == 1
    assert two[up.REQUEST_TOTAL].value(up.REQUEST_TOTAL, **labels) == 2


def test_registering_the_catalogue_twice_is_a_clear_error_that_changes_nothing(
    registry: CollectorRegistry,
) -> None:
    first = Recorder(PrometheusBackend(registry))
    first.record_request_counter("m", "t")
    first.record_request_size("m", "t", 10)
    before = generate_latest(registry)
    with pytest.raises(ValueError, match="Recorder per registry") as caught:
        Recorder(PrometheusBackend(registry))
    assert "inference_model_" in str(caught.value)  # it names the clashing metrics
    assert generate_latest(registry) == before
    # The first recorder still owns every name, once.
    first.record_request_counter("m", "t")
    family = parse_registry(registry)[up.REQUEST_TOTAL]
    assert family.samples == {
        (up.REQUEST_TOTAL, frozenset({("model_name", "m"), ("target_model_name", "t")})): 2
    }


def test_a_clash_with_the_users_own_metric_registers_none_of_ours(
    registry: CollectorRegistry,
) -> None:
    theirs = Counter("inference_model_request", "Theirs.", registry=registry)
    theirs.inc()
    before = generate_latest(registry)
    with pytest.raises(ValueError, match="inference_model_request"):
        Recorder(PrometheusBackend(registry))
    assert generate_latest(registry) == before
    # Nothing of ours was left behind: a metric of ours that does not clash can still be made.
    other = Counter("inference_pool_average_queue_size_other", "x", registry=registry)
    other.inc()


def test_a_duplicate_spec_in_one_register_call_registers_nothing(
    registry: CollectorRegistry,
) -> None:
    spec = CATALOG[up.REQUEST_TOTAL]
    backend = PrometheusBackend(registry)
    with pytest.raises(ValueError, match=up.REQUEST_TOTAL):
        backend.register([spec, spec])
    # The registry is still free for the whole catalogue.
    Recorder(PrometheusBackend(registry)).record_request_counter("m", "t")
    assert set(parse_registry(registry)) == {up.REQUEST_TOTAL}


def test_close_unregisters_and_is_idempotent(registry: CollectorRegistry) -> None:
    backend = PrometheusBackend(registry)
    Recorder(backend).record_request_counter("m", "t")
    assert generate_latest(registry) != b""
    backend.close()
    backend.close()
    assert generate_latest(registry) == b""
    again = Recorder(PrometheusBackend(registry))  # the names are free again
    again.record_pool_queue_size("p", 1)
    assert set(parse_registry(registry)) == {up.POOL_QUEUE_SIZE}


def test_the_default_backend_uses_the_global_registry() -> None:
    backend = PrometheusBackend(None)
    assert backend.registry is REGISTRY
    try:
        recorder = Recorder(backend)
        recorder.record_request_counter("default-registry-model", "t")
        text = generate_latest(REGISTRY).decode()
        assert 'model_name="default-registry-model"' in text
        assert "python_info" in text  # really prometheus_client's global registry
    finally:
        backend.close()
    assert "inference_model_request_total" not in generate_latest(REGISTRY).decode()
    # And it can be registered again afterwards (nothing was left behind).
    PrometheusBackend().close()


def test_a_registry_argument_must_be_a_registry() -> None:
    with pytest.raises(TypeError, match="registry"):
        PrometheusBackend("registry")  # type: ignore[arg-type]


# --- what is exposed ---------------------------------------------------------------------------


def test_families_without_samples_are_absent(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    assert generate_latest(registry) == b""
    # Binding a label set without recording (0 tokens, a latency going backwards) shows nothing.
    recorder.record_input_tokens("m", "t", 0)
    assert recorder.record_request_latency("m", "t", 2.0, 1.0) is False
    assert generate_latest(registry) == b""
    recorder.record_output_tokens("m", "t", 3)
    text = generate_latest(registry).decode()
    assert set(parse_text(text)) == {up.OUTPUT_TOKENS}
    assert text.count("# HELP ") == 1
    assert text.count("# TYPE ") == 1
    assert "model_name" in text


def test_every_catalogue_metric_can_be_exposed(registry: CollectorRegistry) -> None:
    every_metric(Recorder(PrometheusBackend(registry)))
    families = parse_registry(registry)
    assert set(families) == set(CATALOG.names)
    for spec in CATALOG:
        assert families[spec.name].type == spec.kind.value
        assert families[spec.name].documentation == "[ALPHA] " + spec.help


def test_no_created_series_in_either_format(registry: CollectorRegistry) -> None:
    every_metric(Recorder(PrometheusBackend(registry)))
    text = generate_latest(registry).decode()
    om = openmetrics_text(registry)
    assert "_created" not in text
    assert "_created" not in om
    assert om.endswith("# EOF\n")
    # The OpenMetrics output parses, counters named without _total as the format requires.
    names = {family.name for family in parse_openmetrics(om)}
    assert "inference_model_request" in names
    assert "inference_model_request_duration_seconds" in names


def test_prometheus_clients_global_created_switch_is_left_alone(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prometheus_client keeps the switch in prometheus_client.metrics._use_created, flipped by
    # disable_created_metrics()/enable_created_metrics(); neither may be called behind the
    # user's back.
    def forbidden() -> None:
        raise AssertionError("the process-wide _created switch was touched")

    for module in (prometheus_client, prometheus_client.metrics):
        monkeypatch.setattr(module, "disable_created_metrics", forbidden)
        monkeypatch.setattr(module, "enable_created_metrics", forbidden)
    use_created = prometheus_client.metrics._use_created
    recorder = Recorder(PrometheusBackend(registry))
    every_metric(recorder, requests=20)
    generate_latest(registry)
    PrometheusBackend(CollectorRegistry()).close()
    assert prometheus_client.metrics._use_created is use_created
    # A user's own prometheus_client counter still gets _created when the switch is on.
    theirs = CollectorRegistry()
    Counter("user_things", "Theirs.", registry=theirs).inc()
    assert ("user_things_created" in generate_latest(theirs).decode()) is use_created


def test_importing_and_using_the_library_keeps_created_series_on() -> None:
    # In a fresh interpreter, so import-time side effects count too.
    script = (
        "import prometheus_client.metrics as m\n"
        "before = m._use_created\n"
        "from prometheus_client import CollectorRegistry, Counter, generate_latest\n"
        "import inference_metrics\n"
        "from inference_metrics import PrometheusBackend, Recorder\n"
        "r = Recorder(PrometheusBackend(CollectorRegistry()))\n"
        "r.record_request_counter('m', 't')\n"
        "generate_latest(r.backend.registry)\n"
        "theirs = CollectorRegistry()\n"
        "Counter('user_things', 'x', registry=theirs).inc()\n"
        "print(before, m._use_created, b'user_things_created' in generate_latest(theirs))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_DISABLE_CREATED_SERIES"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
        cwd=ROOT,
    )
    assert result.stdout.split() == ["True", "True", "True"]


# --- the backend's own surface -----------------------------------------------------------------


def test_series_refuse_operations_their_kind_lacks(registry: CollectorRegistry) -> None:
    counter_spec = MetricSpec("x_total", Kind.COUNTER, "X.", ("a",))
    gauge_spec = MetricSpec("y", Kind.GAUGE, "Y.", ("a",))
    histogram_spec = MetricSpec("z", Kind.HISTOGRAM, "Z.", ("a",), buckets=(1.0,))
    counter, gauge, histogram = PrometheusBackend(registry).register(
        [counter_spec, gauge_spec, histogram_spec]
    )
    c, g, h = counter.bind(("1",)), gauge.bind(("1",)), histogram.bind(("1",))
    refused: list[Callable[[], None]] = [
        lambda: c.observe(1),
        lambda: c.set(1),
        lambda: g.observe(1),
        lambda: h.add(1),
        lambda: h.set(1),
    ]
    for call in refused:
        with pytest.raises(UnsupportedOperation):
            call()
    assert generate_latest(registry) == b""  # refused operations touched nothing
    with pytest.raises(ValueError, match="labels"):
        counter.bind(("1", "2"))
    g.add(2)
    g.add(-0.5)
    h.observe(1.0)
    h.observe(1.5)
    families = parse_registry(registry)
    assert families["y"].value("y", a="1") == 1.5
    assert families["z"].value("z_bucket", a="1", le="1.0") == 1
    assert families["z"].value("z_bucket", a="1", le="inf") == 2
    assert "x_total" not in families


def test_concurrent_updates_lose_nothing(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    threads, per_thread = 8, 2000

    def work(index: int) -> None:
        for i in range(per_thread):
            recorder.record_request_counter("m", "t")
            recorder.record_response_size("m", f"t{index % 2}", i % 100)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    families = parse_registry(registry)
    labels = {"model_name": "m", "target_model_name": "t"}
    assert families[up.REQUEST_TOTAL].value(up.REQUEST_TOTAL, **labels) == threads * per_thread
    sizes = families[up.RESPONSE_SIZES]
    for target in ("t0", "t1"):
        series = {"model_name": "m", "target_model_name": target}
        assert sizes.value(up.RESPONSE_SIZES + "_count", **series) == threads // 2 * per_thread
        assert sizes.value(up.RESPONSE_SIZES + "_sum", **series) == (
            threads // 2 * sum(i % 100 for i in range(per_thread))
        )


# --- escaping and promtool ---------------------------------------------------------------------

AWKWARD = ['with "quotes"', "back\\slash", "new\nline", "ünïcødé 模型 💡", "", "\\n\\\\", "a}b{c=,"]


@pytest.fixture
def awkward_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    for value in AWKWARD:
        recorder.record_request_counter(value, value)
        recorder.record_request_size(value, "t", 1000)
        recorder.record_request_error("m", value, value or "Internal")
        recorder.record_pool_queue_size(value, 1)
    return registry


def test_awkward_label_values_round_trip(awkward_registry: CollectorRegistry) -> None:
    text = generate_latest(awkward_registry).decode("utf-8")
    assert r'model_name="with \"quotes\""' in text
    assert r'model_name="back\\slash"' in text
    assert r'model_name="new\nline"' in text
    assert 'model_name="ünïcødé 模型 💡"' in text
    families = parse_text(text)
    for value in AWKWARD:
        assert (
            families[up.REQUEST_TOTAL].value(
                up.REQUEST_TOTAL, model_name=value, target_model_name=value
            )
            == 1
        )
        assert (
            families[up.REQUEST_SIZES].value(
                up.REQUEST_SIZES + "_count", model_name=value, target_model_name="t"
            )
            == 1
        )
        assert families[up.POOL_QUEUE_SIZE].value(up.POOL_QUEUE_SIZE, name=value) == 1
    # The OpenMetrics parser reads them back the same.
    om = openmetrics_text(awkward_registry)
    request = next(f for f in parse_openmetrics(om) if f.name == "inference_model_request")
    assert {s.labels["model_name"] for s in request.samples} == set(AWKWARD)


def test_promtool_accepts_awkward_label_values(awkward_registry: CollectorRegistry) -> None:
    result = check_metrics(generate_latest(awkward_registry))
    # promtool exits 3 and prints lint problems (a counter without _total, say) on stderr.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_promtool_accepts_a_full_simulated_registry(registry: CollectorRegistry) -> None:
    every_metric(Recorder(PrometheusBackend(registry)), requests=500)
    exposition = generate_latest(registry)
    assert set(parse_text(exposition.decode())) == set(CATALOG.names)
    result = check_metrics(exposition)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_promtool_would_complain_about_a_bad_exposition() -> None:
    # The checks above mean something only if promtool really lints what it is given.
    result = check_metrics(b"# HELP things x\n# TYPE things counter\nthings 1\n")
    assert result.returncode != 0
    assert '"_total" suffix' in result.stdout + result.stderr

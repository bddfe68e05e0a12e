"""Upstream's own Grafana dashboards and alert rules work, unchanged, against what the demo exposes.

One module-scoped ``inference-metrics demo`` (a real subprocess: bearer-token auth, simulated
traffic at 50 requests/s, seed 1) is scraped every second by a real Prometheus that also loads
upstream's alert rules. Then:

* every endpoint-picker (EPP) expression of the gateway-api-inference-extension dashboards
  (v0.3.0: 19, v1.0.2: 20), extracted from the dashboard JSON itself, returns data with finite
  values and without PromQL warnings;
* the 4 alerting rules of ``tools/alerts/alert.yaml`` (v1.0.2) pass ``promtool check rules``, load
  and evaluate with health "ok", and their expressions without the threshold return data.

Then, per schema, a demo run with ``--schema NAME`` and a Prometheus of its own:

* upstream's v1.5.0 dashboard (its 20 endpoint-picker and pool queries) and v1.5.0 alert rules,
  unchanged, against ``demo --schema gie-v1.5`` and ``demo --schema llm-d-router`` (whose
  deprecated twins carry the v1.5 names): every query returns data;
* our own dashboard (``examples/monitoring/NAME/dashboard.json``): every query returns data;
* our own rules: every recording rule returns data, every alert's expression without its
  threshold returns data, every rule evaluates with health "ok".

And per schema, ``demo --histograms native --exemplars`` scraped by a Prometheus with native
histograms and exemplar storage on, loading our native rules: every query of our native dashboard
returns data, every native rule evaluates and returns data, and each latency panel (those asking
Grafana for exemplars) has exemplars carrying trace ids.

The upstream files are byte-for-byte copies in ``tests/data/upstream/`` (their origin is in its
README.md; ``$INFERENCE_METRICS_REFERENCE`` points elsewhere); their git blob ids are checked so a
changed copy cannot pass unnoticed. The module is skipped only when Prometheus is missing.

* the v1.5.0 dashboard's Flow Control row (its 15 ``inference_extension_flow_control_*``
  queries), against the same two demos: every query returns data. Its other rows query the model
  servers' ``vllm:*`` and the Body Based Router's ``bbr_*`` metrics, no picker's.

Grafana's ``$__rate_interval`` is replaced by ``[15s]`` (see ``RATE_INTERVAL``), its ``$__range``
(the dashboard's time range) by ``5m`` (see ``RANGE``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inference_metrics.simulate import BURST_TENANT, DEFAULT_MODELS, FAIRNESS_IDS, PRIORITIES

from .prometheus_harness import (
    PrometheusError,
    PrometheusServer,
    ScrapeJob,
    find_prometheus,
    free_port,
    stop_process,
)

REFERENCE = Path(
    os.environ.get("INFERENCE_METRICS_REFERENCE", Path(__file__).parent / "data" / "upstream")
)
DASHBOARD_V03 = "gie-inference-gateway-v0.3.0.json"
DASHBOARD_V10 = "gie-inference-gateway-v1.0.2.json"
DASHBOARD_V15 = "gie-inference-gateway-v1.5.0.json"
ALERTS = "gie-alerts-v1.0.2.yaml"
ALERTS_V15 = "gie-alerts-v1.5.0.yaml"
#: ``git hash-object`` of the byte-for-byte upstream copies (from the reference README).
BLOBS = {
    DASHBOARD_V03: "cf00420d3f50c57e0b145a26bbb60efc69b4dea9",
    DASHBOARD_V10: "244f4ab14eb2ab5e697c3c6dac3269236841739e",
    ALERTS: "c712207a441bb27aeea3528f8f3950698c62828c",
    DASHBOARD_V15: "d5431f19eb412d29a4770a089c565ce3aa6cc1e0",
    ALERTS_V15: "687123febe25148953ed41486cf17bcbad8d8601",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_prometheus() is None, reason="needs the prometheus binary"),
]

#: What replaces Grafana's ``$__rate_interval``. Grafana computes max(4 x scrape interval,
#: step + scrape interval), i.e. at least 4s at our 1s scrapes; rate() needs two samples in the
#: window, which a 15s window has about 2s after the first scrape, while still being short enough
#: to follow the traffic and holding ~750 requests (at 50/s) for stable quantiles.
RATE_INTERVAL = "15s"
#: What replaces Grafana's ``$__range``: longer than a test runs, so it covers every scrape.
RANGE = "5m"
DEMO_RATE = 50
SCRAPE_TOKEN = "dashboards-scrape-token-5c1e07"
PROMETHEUS_JOB = "demo"
#: How long every query gets to return data, counted from the first successful scrape.
DATA_TIMEOUT = 30.0
EPP_METRIC = re.compile(r"\binference_(?:model|objective|pool)_\w+")
FLOW_CONTROL_METRIC = re.compile(r"\binference_extension_flow_control_\w+")
POOL_NAME = "vllm-llama3-8b"  # simulate_pools' default
ALERT_NAMES = {
    "HighInferenceRequestLatencyP99",
    "HighInferenceErrorRate",
    "HighInferencePoolAvgQueueSize",
    "HighInferencePoolAvgKVCacheUtilization",
}
THRESHOLD = re.compile(r"^(?P<inner>.*\S)\s*>\s*[0-9.]+\s*$", re.DOTALL)


# ------------------------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class PanelQuery:
    """One query of a dashboard panel, and the row it is shown under."""

    row: str
    title: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        # The reference README's format: "[row] panel title (refId): expr".
        return f"[{self.row}] {self.title} ({self.ref_id}): {self.expr}"

    @property
    def promql(self) -> str:
        """The expression as Prometheus takes it: Grafana's range macros replaced."""
        return self.expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every ``targets[].expr`` in dashboard order, including panels nested in collapsed rows."""
    queries: list[PanelQuery] = []
    row = ""

    def visit(panels: Sequence[Mapping[str, Any]], nested: bool) -> None:
        nonlocal row
        for panel in panels:
            if panel.get("type") == "row" and not nested:
                row = str(panel.get("title", ""))
            for target in panel.get("targets", ()):
                if target.get("expr"):
                    queries.append(
                        PanelQuery(row, str(panel["title"]), str(target["refId"]), target["expr"])
                    )
            visit(panel.get("panels", ()), nested=True)

    visit(dashboard["panels"], nested=False)
    return queries


def epp_queries(name: str, metric: re.Pattern[str] = EPP_METRIC) -> list[PanelQuery]:
    dashboard = json.loads((REFERENCE / name).read_text())
    return [query for query in panel_queries(dashboard) if metric.search(query.expr)]


def readme_sections() -> dict[str, list[str]]:
    """The reference README's sections (a title underlined with - or =) and their lines."""
    lines = (REFERENCE / "README.md").read_text().splitlines()
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for index, line in enumerate(lines):
        underline = lines[index + 1] if index + 1 < len(lines) else ""
        if len(underline) >= 3 and set(underline) in ({"-"}, {"="}):
            current = sections.setdefault(line.strip(), [])
        elif not (len(line) >= 3 and set(line) in ({"-"}, {"="})):
            current.append(line)
    return sections


def readme_expressions(section: str, after: str | None = None) -> list[str]:
    lines = readme_sections()[section]
    if after is not None:
        lines = lines[lines.index(after) + 1 :]
    return [line for line in lines if line.startswith("[")]


# ------------------------------------------------------------------------------ processes


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


def demo_command() -> str:
    beside = Path(sys.executable).with_name("inference-metrics")
    if beside.is_file():
        return str(beside)
    found = shutil.which("inference-metrics")
    if found is None:
        pytest.skip("the inference-metrics console script is not installed")
    return found


def http_status(url: str, token: str | None = None, timeout: float = 2.0) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboards")


@contextlib.contextmanager
def running_demo(
    workdir: Path, name: str, schemas: Sequence[str] = (), extra: Sequence[str] = ()
) -> Iterator[Demo]:
    """``inference-metrics demo`` (token auth, seed 1, ``extra`` flags) until the block ends."""
    tokens = workdir / f"{name}-server-tokens"
    tokens.write_text(SCRAPE_TOKEN + "\n")
    port = free_port()
    log_path = workdir / f"{name}-demo.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                demo_command(),
                "demo",
                "--host=127.0.0.1",
                f"--port={port}",
                "--auth=token",
                f"--token-file={tokens}",
                f"--rate={DEMO_RATE}",
                "--seed=1",
                *(f"--schema={schema}" for schema in schemas),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = Demo(process, port, log_path)
    try:
        deadline = time.monotonic() + 15.0
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo exited with {process.returncode}:\n{running.log()}")
            try:
                if http_status(f"{running.url}/healthz") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not answer /healthz within 15s:\n{running.log()}")
            time.sleep(0.1)
        yield running
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def demo(workdir: Path) -> Iterator[Demo]:
    with running_demo(workdir, "default") as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(demo: Demo, workdir: Path) -> Iterator[PrometheusServer]:
    credentials = workdir / "scrape-token"
    credentials.write_text(SCRAPE_TOKEN + "\n")
    job = ScrapeJob(
        PROMETHEUS_JOB,
        [f"127.0.0.1:{demo.port}"],
        scrape_interval="1s",
        bearer_token_file=credentials,  # authorization: {type: Bearer, credentials_file: ...}
    )
    server = PrometheusServer([job], workdir / "prometheus", rule_files=[REFERENCE / ALERTS])
    with server:
        server.wait_for_targets(PROMETHEUS_JOB, "up", timeout=15)
        yield server


# ------------------------------------------------------------------------------- querying


def query_payload(prometheus: PrometheusServer, promql: str) -> dict[str, Any]:
    """The whole /api/v1/query answer, warnings (and, on newer Prometheus, infos) included."""
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            payload: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read()[:500]
        error.close()
        raise PrometheusError(f"{promql!r}: HTTP {error.code}: {body!r}") from None
    if payload.get("status") != "success":
        raise PrometheusError(f"{promql!r}: {payload}")
    return payload


def problem(payload: Mapping[str, Any]) -> str | None:
    """Why a query answer is not yet a good one (None when it is)."""
    notes = [*payload.get("warnings", ()), *payload.get("infos", ())]
    if notes:
        return f"PromQL warnings {notes}"
    data = payload["data"]
    if data["resultType"] != "vector":
        return f"result type {data['resultType']}, not vector"
    if not data["result"]:
        return "no data"
    values = [float(series["value"][1]) for series in data["result"]]
    if not all(math.isfinite(value) for value in values):
        return f"non-finite values {values}"
    return None


def wait_for_data(
    prometheus: PrometheusServer, queries: Mapping[str, str], timeout: float = DATA_TIMEOUT
) -> dict[str, list[dict[str, Any]]]:
    """Poll until every query (label -> PromQL) returns finite data; fail listing the rest."""
    deadline = time.monotonic() + timeout
    while True:
        results: dict[str, list[dict[str, Any]]] = {}
        failures: dict[str, str] = {}
        for label, promql in queries.items():
            payload = query_payload(prometheus, promql)
            reason = problem(payload)
            if reason is None:
                results[label] = payload["data"]["result"]
            else:
                failures[label] = f"{promql}\n      -> {reason}"
        if not failures:
            return results
        if time.monotonic() > deadline:
            listing = "\n".join(f"  {label}\n      {why}" for label, why in failures.items())
            pytest.fail(
                f"{len(failures)} of {len(queries)} queries gave no good data within "
                f"{timeout:g}s:\n{listing}\nPrometheus log:\n{prometheus.log()}"
            )
        time.sleep(0.5)


def label_sets(
    results: Mapping[str, list[dict[str, Any]]], key: str, *labels: str
) -> set[tuple[str, ...]]:
    return {tuple(series["metric"].get(label, "") for label in labels) for series in results[key]}


# ----------------------------------------------------------------------------------- tests


def test_reference_files_are_upstream_copies() -> None:
    assert {name: git_blob_id(REFERENCE / name) for name in BLOBS} == BLOBS


def test_epp_queries_match_the_reference_lists() -> None:
    v03 = [str(query) for query in epp_queries(DASHBOARD_V03)]
    v10 = [str(query) for query in epp_queries(DASHBOARD_V10)]
    assert len(v03) == 19
    assert len(v10) == 20
    assert v03 == readme_expressions("EPP expressions in gie-inference-gateway-v0.3.0.json (19)")
    assert v10 == readme_expressions(
        "EPP expressions in gie-inference-gateway-v1.0.2.json (20)",
        after="The full list, in dashboard order:",
    )
    # v1.0.2 = v0.3.0 + "Queue Size Per Pod"
    assert [q for q in v10 if "Queue Size Per Pod" not in q] == v03
    for query in (*epp_queries(DASHBOARD_V03), *epp_queries(DASHBOARD_V10)):
        assert "$" not in query.promql, query  # no other Grafana variable to fill in


def test_the_demo_guards_metrics(demo: Demo) -> None:
    assert http_status(f"{demo.url}/metrics") == 401
    assert http_status(f"{demo.url}/metrics", token=SCRAPE_TOKEN) == 200


def test_exposition_passes_promtool_check_metrics(demo: Demo) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool")
    request = urllib.request.Request(
        f"{demo.url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        exposition = response.read()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == b"", checked.stdout  # no lint findings either


@pytest.mark.parametrize("dashboard", [DASHBOARD_V03, DASHBOARD_V10])
def test_every_epp_dashboard_query_returns_data(
    prometheus: PrometheusServer, dashboard: str
) -> None:
    queries = {str(query): query.promql for query in epp_queries(dashboard)}
    results = wait_for_data(prometheus, queries)

    # Beyond "some data": the series carry the labels the panels group by.
    by_key = {query.title + " " + query.ref_id: str(query) for query in epp_queries(dashboard)}
    assert label_sets(results, by_key["Request / s A"], "model_name", "target_model_name") == set(
        DEFAULT_MODELS
    )
    errors = label_sets(results, by_key["Request Error / s A"], "model_name", "error_code")
    assert {model for model, _ in errors} <= {"", *(model for model, _ in DEFAULT_MODELS)}
    assert all(code for _, code in errors)
    for title in ("Average KV Cache Utilization A", "Average Queue Size A"):
        assert label_sets(results, by_key[title], "name") == {(POOL_NAME,)}
    for query in epp_queries(dashboard):
        if query.expr.startswith("histogram_quantile("):
            (series,) = results[str(query)]  # sum by(le), then the quantile: one series
            assert float(series["value"][1]) > 0, query
    if "Queue Size Per Pod A" in by_key:
        # No scraper adds a "pod" target label here, so it is empty, as the README says.
        assert label_sets(
            results, by_key["Queue Size Per Pod A"], "name", "model_server_pod", "pod"
        ) == {(POOL_NAME, f"vllm-{index}", "") for index in range(3)}


@pytest.mark.parametrize("alerts", [ALERTS, ALERTS_V15])
def test_alert_rules_pass_promtool(alerts: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(REFERENCE / alerts)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def loaded_rules(prometheus: PrometheusServer, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The alerting rules, once each has been evaluated at least once."""
    deadline = time.monotonic() + timeout
    while True:
        rules = [rule for group in prometheus.rules() for rule in group["rules"]]
        evaluated = [r for r in rules if not str(r.get("lastEvaluation", "")).startswith("0001")]
        if rules and len(evaluated) == len(rules):
            return rules
        if time.monotonic() > deadline:
            pytest.fail(f"rules not all evaluated within {timeout:g}s: {rules}\n{prometheus.log()}")
        time.sleep(0.2)


def test_alert_rules_load_and_evaluate(prometheus: PrometheusServer) -> None:
    # Evaluate until the scraped data is in, so rules are checked against real series.
    wait_for_data(prometheus, {"requests": "sum(rate(inference_model_request_total[15s]))"})
    time.sleep(1.5)  # at least one more rule evaluation (evaluation_interval 1s)
    rules = loaded_rules(prometheus)
    assert {rule["name"] for rule in rules} == ALERT_NAMES
    assert len(rules) == 4
    for rule in rules:
        assert rule["type"] == "alerting", rule
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule
        assert rule["duration"] == 300, rule  # for: 5m
        # The expression as loaded runs as an instant query (empty is fine: thresholds).
        prometheus.query(rule["query"])

    # Without the threshold, every rule's expression returns data: the names line up.
    inner: dict[str, str] = {}
    for rule in rules:
        match = THRESHOLD.match(rule["query"])
        assert match, rule["query"]
        inner[rule["name"]] = match["inner"]
    results = wait_for_data(prometheus, inner)

    # The P99 rule has no sum by(le): one series per (model_name, target_model_name) target.
    p99 = label_sets(results, "HighInferenceRequestLatencyP99", "model_name", "target_model_name")
    assert p99 == set(DEFAULT_MODELS)
    # Error ratio by model_name: the BadRequest errors (model_name="") have no request_total
    # partner and drop out; each model's ratio is a plausible fraction.
    ratios = {
        s["metric"]["model_name"]: float(s["value"][1]) for s in results["HighInferenceErrorRate"]
    }
    assert set(ratios) == {model for model, _ in DEFAULT_MODELS}
    assert all(0 <= ratio < 1 for ratio in ratios.values()), ratios
    for name in ("HighInferencePoolAvgQueueSize", "HighInferencePoolAvgKVCacheUtilization"):
        assert label_sets(results, name, "name") == {(POOL_NAME,)}

    # Any alert already pending (the simulation can cross a threshold) renders its annotations.
    for alert in prometheus.alerts():
        assert alert["state"] == "pending", alert  # for: 5m, so none can fire in this test
        for text in alert["annotations"].values():
            assert "error expanding template" not in text, alert


# ------------------------------------------------------------ schemas: GIE v1.5.0's files, ours
#
# One demo per schema (``--schema NAME``), each scraped by a Prometheus of its own that loads our
# rules for that schema and, for gie-v1.5 and llm-d-router (whose deprecated twins carry the v1.5
# names), upstream's v1.5.0 alert rules.

MONITORING = Path(__file__).resolve().parent.parent / "examples" / "monitoring"
SCHEMA_DEMOS = ("gie-v0.3", "gie-v1.5", "llm-d-router")
WITH_V15_NAMES = ("gie-v1.5", "llm-d-router")


@dataclass
class SchemaWorld:
    schema: str
    demo: Demo
    prometheus: PrometheusServer


@contextlib.contextmanager
def schema_world(
    workdir: Path,
    schema: str,
    rule_files: Sequence[Path],
    name: str = "",
    flags: Sequence[str] = (),
    features: Sequence[str] = (),
) -> Iterator[SchemaWorld]:
    """``demo --schema SCHEMA`` (with ``flags``) scraped every second by a Prometheus of its own
    (with ``features`` enabled) loading ``rule_files``."""
    name = name or schema
    with running_demo(workdir, name, [schema], flags) as running:
        credentials = workdir / f"{name}-scrape-token"
        credentials.write_text(SCRAPE_TOKEN + "\n")
        job = ScrapeJob(
            PROMETHEUS_JOB,
            [f"127.0.0.1:{running.port}"],
            scrape_interval="1s",
            bearer_token_file=credentials,
        )
        extra = [f"--enable-feature={','.join(features)}"] if features else []
        server = PrometheusServer(
            [job], workdir / f"prometheus-{name}", rule_files=rule_files, extra_args=extra
        )
        with server:
            server.wait_for_targets(PROMETHEUS_JOB, "up", timeout=15)
            yield SchemaWorld(schema, running, server)


@pytest.fixture(scope="module", params=SCHEMA_DEMOS)
def world(request: pytest.FixtureRequest, workdir: Path) -> Iterator[SchemaWorld]:
    schema: str = request.param
    rule_files = [MONITORING / schema / "rules.yaml"]
    if schema in WITH_V15_NAMES:
        rule_files.append(REFERENCE / ALERTS_V15)
    with schema_world(workdir, schema, rule_files) as world:
        yield world


def our_queries(schema: str) -> list[PanelQuery]:
    dashboard = json.loads((MONITORING / schema / "dashboard.json").read_text())
    return panel_queries(dashboard)


def test_the_v150_epp_queries_are_v102s_under_the_objective_names() -> None:
    v10 = [str(query) for query in epp_queries(DASHBOARD_V10)]
    v15 = [str(query) for query in epp_queries(DASHBOARD_V15)]
    assert len(v15) == 20
    assert v15 == [
        q.replace("inference_model_", "inference_objective_").replace(
            "[Inference Model]", "[Inference Objective]"
        )
        for q in v10
    ]
    assert v15 == readme_expressions(
        "EPP expressions in gie-inference-gateway-v1.5.0.json (20)",
        after="The full list, in dashboard order:",
    )


@pytest.mark.parametrize("world", WITH_V15_NAMES, indirect=True)
def test_every_v150_epp_dashboard_query_returns_data(world: SchemaWorld) -> None:
    queries = epp_queries(DASHBOARD_V15)
    results = wait_for_data(world.prometheus, {str(q): q.promql for q in queries})
    by_key = {query.title + " " + query.ref_id: str(query) for query in queries}
    assert label_sets(results, by_key["Request / s A"], "model_name", "target_model_name") == set(
        DEFAULT_MODELS
    )
    for query in queries:
        if query.expr.startswith("histogram_quantile("):
            (series,) = results[str(query)]
            assert float(series["value"][1]) > 0, query
    assert label_sets(
        results, by_key["Queue Size Per Pod A"], "name", "model_server_pod", "pod"
    ) == {(POOL_NAME, f"vllm-{index}", "") for index in range(3)}


def test_the_v150_flow_control_queries_are_the_reference_list() -> None:
    queries = epp_queries(DASHBOARD_V15, FLOW_CONTROL_METRIC)
    assert [str(query) for query in queries] == readme_expressions(
        "Flow Control expressions in gie-inference-gateway-v1.5.0.json (15)",
        after="flows minus the top 10. The full list, in dashboard order:",
    )
    assert {query.row for query in queries} == {"Flow Control Layer"}
    for query in queries:
        assert "$" not in query.promql, query  # no other Grafana variable to fill in


@pytest.mark.parametrize("world", WITH_V15_NAMES, indirect=True)
def test_every_v150_flow_control_query_returns_data(world: SchemaWorld) -> None:
    queries = epp_queries(DASHBOARD_V15, FLOW_CONTROL_METRIC)
    results = wait_for_data(world.prometheus, {str(q): q.promql for q in queries})
    by_key = {query.title + " " + query.ref_id: str(query) for query in queries}
    assert label_sets(results, by_key["Pool Saturation A"], "inference_pool") == {(POOL_NAME,)}
    flows = label_sets(results, by_key["Queue Depth A"], "fairness_id", "priority")
    assert {flow for flow in flows if flow[0] != BURST_TENANT} == {
        (fairness_id, str(priority)) for fairness_id in FAIRNESS_IDS for priority in PRIORITIES
    }
    outcomes = label_sets(results, by_key["Dispatch Outcomes B"], "outcome")
    assert ("Dispatched",) in outcomes
    for key in ("Wait Time (P99) A", "Internal Processing Latency (P99) A"):
        assert all(float(series["value"][1]) > 0 for series in results[by_key[key]]), key


@pytest.mark.parametrize("world", WITH_V15_NAMES, indirect=True)
def test_the_v150_alert_rules_evaluate_and_return_data(world: SchemaWorld) -> None:
    rules = [
        rule
        for group in world.prometheus.rules()
        if group["name"] == "gateway-api-inference-extension"
        for rule in group["rules"]
    ]
    assert {rule["name"] for rule in rules} == ALERT_NAMES
    inner: dict[str, str] = {}
    for rule in rules:
        match = THRESHOLD.match(rule["query"])
        assert match, rule["query"]
        inner[rule["name"]] = match["inner"]
    results = wait_for_data(world.prometheus, inner)
    for rule in loaded_rules(world.prometheus):
        assert rule["health"] == "ok", rule
    p99 = label_sets(results, "HighInferenceRequestLatencyP99", "model_name", "target_model_name")
    assert p99 == set(DEFAULT_MODELS)


def test_every_query_of_our_dashboard_returns_data(world: SchemaWorld) -> None:
    queries = our_queries(world.schema)
    assert queries
    results = wait_for_data(world.prometheus, {str(q): q.promql for q in queries})
    for query in queries:
        if query.expr.startswith("histogram_quantile("):
            (series,) = results[str(query)]
            assert float(series["value"][1]) > 0, query


def test_our_rules_evaluate_and_every_one_returns_data(world: SchemaWorld) -> None:
    ours = [
        rule
        for group in world.prometheus.rules()
        if group["name"].startswith(f"inference-metrics-{world.schema}-")
        for rule in group["rules"]
    ]
    recorded = {rule["name"]: rule["name"] for rule in ours if rule["type"] == "recording"}
    alerting = [rule for rule in ours if rule["type"] == "alerting"]
    assert len(recorded) >= 10
    assert len(alerting) == 6
    inner = {}
    for rule in alerting:
        match = re.match(r"^(?P<inner>.*\S)\s*(?:>|==)\s*[0-9.]+\s*$", rule["query"], re.DOTALL)
        assert match, rule["query"]
        inner[rule["name"]] = match["inner"]
    wait_for_data(world.prometheus, {**recorded, **inner})
    for rule in loaded_rules(world.prometheus):
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule


# ------------------------------------------------------ native histograms: our native variant


@pytest.fixture(scope="module", params=SCHEMA_DEMOS)
def native_world(request: pytest.FixtureRequest, workdir: Path) -> Iterator[SchemaWorld]:
    schema: str = request.param
    with schema_world(
        workdir,
        schema,
        [MONITORING / schema / "rules-native.yaml"],
        name=f"{schema}-native",
        flags=["--histograms=native", "--exemplars"],
        features=["native-histograms", "exemplar-storage"],
    ) as world:
        yield world


def native_queries(schema: str) -> list[PanelQuery]:
    dashboard = json.loads((MONITORING / schema / "dashboard-native.json").read_text())
    return panel_queries(dashboard)


def test_every_query_of_our_native_dashboard_returns_data(native_world: SchemaWorld) -> None:
    queries = native_queries(native_world.schema)
    quantiles = [query for query in queries if query.expr.startswith("histogram_quantile(")]
    assert quantiles
    assert all("_bucket" not in query.expr for query in quantiles)
    results = wait_for_data(native_world.prometheus, {str(q): q.promql for q in queries})
    for query in quantiles:
        (series,) = results[str(query)]
        assert float(series["value"][1]) > 0, query


def test_our_native_rules_evaluate_and_every_one_returns_data(native_world: SchemaWorld) -> None:
    ours = [rule for group in native_world.prometheus.rules() for rule in group["rules"]]
    recorded = {rule["name"]: rule["name"] for rule in ours if rule["type"] == "recording"}
    assert len(recorded) >= 10
    wait_for_data(native_world.prometheus, recorded)
    for rule in loaded_rules(native_world.prometheus):
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule


def test_every_latency_panel_of_the_native_dashboard_has_exemplars_with_trace_ids(
    native_world: SchemaWorld,
) -> None:
    dashboard = json.loads((MONITORING / native_world.schema / "dashboard-native.json").read_text())
    exemplar_queries = {
        target["expr"].replace("$__rate_interval", RATE_INTERVAL)
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if target.get("exemplar")
    }
    assert exemplar_queries
    deadline = time.monotonic() + DATA_TIMEOUT
    for expr in sorted(exemplar_queries):
        while True:  # what Grafana asks for a panel with exemplars on
            found = native_world.prometheus.api(
                "query_exemplars", query=expr, start=time.time() - 600, end=time.time() + 60
            )
            ids = [e["labels"].get("trace_id", "") for s in found for e in s["exemplars"]]
            if ids:
                break
            assert time.monotonic() < deadline, f"no exemplars for {expr}"
            time.sleep(0.5)
        assert all(re.fullmatch("[0-9a-f]{32}", trace_id) for trace_id in ids), expr

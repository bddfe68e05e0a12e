"""Our generated dashboards and rules: shipped files are current, promtool accepts and tests them.

The rule unit tests run ``promtool test rules`` on synthetic series built from each schema's
metric names: 10 requests/min with 1 error/min (a 10% error ratio), every request in the
(10 s, 15 s] latency bucket, a queue of 60, a KV cache at 95% and no ready endpoint. Every alert
must fire at 10 minutes with the labels and annotation text written out below by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inference_metrics import quantities as q
from inference_metrics.cli import main
from inference_metrics.dashboards import dashboard, render_dashboard, render_rules, rules
from inference_metrics.quantities import Quantity
from inference_metrics.schemas import SCHEMAS, Schema

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "examples" / "monitoring"
SHIPPED = [name for name in SCHEMAS if not name.endswith("-without-deprecated")]
STALE = (
    "examples/monitoring is stale: regenerate with `.venv/bin/inference-metrics docs --schema "
    "NAME --format grafana > examples/monitoring/NAME/dashboard.json` (and --format rules > "
    "rules.yaml, and both with --histograms native > dashboard-native.json, rules-native.yaml) "
    "and commit the result"
)
#: The shipped files of a schema: name -> (format, native).
FILES = {
    "dashboard.json": ("grafana", False),
    "rules.yaml": ("rules", False),
    "dashboard-native.json": ("grafana", True),
    "rules-native.yaml": ("rules", True),
}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def test_every_shipped_schema_has_a_dashboard_and_rules_and_nothing_else() -> None:
    assert sorted(p.name for p in MONITORING.iterdir()) == sorted(SHIPPED)
    for name in SHIPPED:
        assert sorted(p.name for p in (MONITORING / name).iterdir()) == sorted(FILES)


@pytest.mark.parametrize("file", sorted(FILES))
@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_files_are_the_generated_ones(name: str, file: str) -> None:
    fmt, native = FILES[file]
    render = render_dashboard if fmt == "grafana" else render_rules
    assert (MONITORING / name / file).read_text() == render(SCHEMAS[name], native=native), STALE


@pytest.mark.parametrize("file", sorted(FILES))
def test_the_docs_command_prints_the_shipped_files(
    file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fmt, native = FILES[file]
    flags = ["--histograms", "native"] if native else []
    assert main(["docs", "--schema", "gie-v1.5", "--format", fmt, *flags]) == 0
    assert capsys.readouterr().out == (MONITORING / "gie-v1.5" / file).read_text()


def test_native_histograms_for_the_markdown_reference_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["docs", "--histograms", "native"])
    assert caught.value.code == 2
    assert "--histograms only applies with --format grafana or rules" in capsys.readouterr().err


def test_grafana_or_rules_without_a_schema_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["docs", "--format", "rules"])
    assert caught.value.code == 2
    assert "needs --schema NAME" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_current_metric_has_exactly_one_panel(name: str) -> None:
    schema = SCHEMAS[name]
    panels = [p for p in dashboard(schema)["panels"] if p["type"] != "row"]
    described = sorted(p["description"] for p in panels)
    assert described == sorted(m.spec.help for m in schema if not m.deprecated_twin)
    queried: set[str] = set()
    for panel in panels:
        for target in panel["targets"]:
            queried.update(m.spec.name for m in schema if m.spec.name in target["expr"])
    assert queried >= {m.spec.name for m in schema if not m.deprecated_twin}


def test_a_histogram_panel_shows_p50_p90_p99_and_the_error_panel_groups_by_code() -> None:
    panels = {p["title"]: p for p in dashboard(SCHEMAS["llm-d-router"])["panels"]}
    ttft = [t["expr"] for t in panels["llm d epp request ttft seconds"]["targets"]]
    assert ttft == [
        f"histogram_quantile({q}, sum by(le) "
        "(rate(llm_d_epp_request_ttft_seconds_bucket[$__rate_interval])))"
        for q in ("0.5", "0.9", "0.99")
    ]
    assert all(target["exemplar"] for target in panels["llm d epp request ttft seconds"]["targets"])
    (errors,) = panels["llm d epp request error"]["targets"]
    assert errors["expr"] == (
        "sum by(error_code, model_name) (rate(llm_d_epp_request_error_total[$__rate_interval]))"
    )


def test_the_native_variant_reads_native_series_with_the_same_rule_names() -> None:
    schema = SCHEMAS["llm-d-router"]
    panels = {p["title"]: p for p in dashboard(schema, native=True)["panels"]}
    ttft = [t["expr"] for t in panels["llm d epp request ttft seconds"]["targets"]]
    assert ttft == [
        f"histogram_quantile({q}, sum (rate(llm_d_epp_request_ttft_seconds[$__rate_interval])))"
        for q in ("0.5", "0.9", "0.99")
    ]
    sizes = [t["expr"] for t in panels["llm d epp request size bytes"]["targets"]]
    assert all("_bucket" not in expr for expr in sizes)
    native, classic = (rules(schema, native=flag)["groups"] for flag in (True, False))
    assert [r.get("record") or r["alert"] for g in native for r in g["rules"]] == [
        r.get("record") or r["alert"] for g in classic for r in g["rules"]
    ]
    (p99,) = [r for r in native[0]["rules"] if r["record"].endswith("duration_seconds:p99_rate5m")]
    assert p99["expr"] == (
        "histogram_quantile(0.99, sum by(model_name) "
        "(rate(llm_d_epp_request_duration_seconds[5m])))"
    )


def test_only_latency_panels_ask_grafana_for_exemplars() -> None:
    panels = [p for p in dashboard(SCHEMAS["llm-d-router"])["panels"] if p["type"] != "row"]
    with_exemplars = {p["title"] for p in panels if any(t.get("exemplar") for t in p["targets"])}
    assert with_exemplars == {
        "llm d epp request duration seconds",
        "llm d epp request ttft seconds",
        "llm d epp request streaming tpot seconds",
        "llm d epp request streaming itl seconds",
    }


@needs_promtool
@pytest.mark.parametrize("file", ["rules.yaml", "rules-native.yaml"])
@pytest.mark.parametrize("name", SHIPPED)
def test_promtool_accepts_the_shipped_rules(name: str, file: str) -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(MONITORING / name / file)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = sum(len(group["rules"]) for group in rules(SCHEMAS[name])["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout


@needs_promtool
@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("name", SHIPPED)
def test_promtool_checks_every_dashboard_query_parses(
    name: str, native: bool, tmp_path: Path
) -> None:
    queries = [
        target["expr"].replace("$__rate_interval", "1m")
        for panel in dashboard(SCHEMAS[name], native=native)["panels"]
        for target in panel.get("targets", ())
    ]
    # Each query as a recording rule: promtool parses every expression.
    file = tmp_path / "queries.yaml"
    file.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "q",
                        "rules": [{"record": f"q:{i}", "expr": q} for i, q in enumerate(queries)],
                    }
                ]
            }
        )
    )
    checked = subprocess.run(
        ["promtool", "check", "rules", str(file)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------------------- promtool test rules


def bucket_series(metric: str, bounds: tuple[float, ...], extra: str) -> list[dict[str, str]]:
    """10 observations a minute, all in the (10, 15] bucket."""
    return [
        {
            "series": f'{metric}_bucket{{model_name="m",{extra}le="{le}"}}',
            "values": "0+10x20" if le == "+Inf" or float(le) >= 15 else "0+0x20",
        }
        for le in (*(repr(float(b)) for b in bounds), "+Inf")
    ]


def unit_test(schema: Schema) -> dict[str, Any]:
    def spec(quantity: Quantity) -> Any:
        view = schema.view(quantity)
        assert view is not None, quantity
        return view.spec

    total, errors = spec(q.REQUEST_TOTAL), spec(q.REQUEST_ERROR_TOTAL)
    extra = "".join(f'{label}="x",' for label in total.labels if label not in ("model_name",))
    series = [
        {"series": f'{total.name}{{model_name="m",{extra[:-1]}}}', "values": "0+10x20"},
        {
            "series": f'{errors.name}{{model_name="m",{extra}error_code="Internal"}}',
            "values": "0+1x20",
        },
        {"series": f'{spec(q.POOL_QUEUE_SIZE).name}{{name="p"}}', "values": "60x20"},
        {"series": f'{spec(q.POOL_KV_CACHE).name}{{name="p"}}', "values": "0.95x20"},
        {"series": f'{spec(q.POOL_READY).name}{{name="p"}}', "values": "0x20"},
    ]
    duration, ttft = spec(q.REQUEST_DURATION), spec(q.TTFT)
    series += bucket_series(duration.name, duration.buckets, extra)
    ttft_extra = "".join(f'{label}="x",' for label in ttft.labels if label != "model_name")
    series += bucket_series(ttft.name, ttft.buckets, ttft_extra)
    model = {"model_name": "m"}
    pool = {"name": "p"}
    expected = {
        "InferenceHighErrorRate": (
            "critical",
            model,
            "High error rate for model m",
            "More than 5% of the requests for model m failed over the last 5 minutes (10%).",
        ),
        "InferenceHighRequestLatencyP99": (
            "warning",
            model,
            "High request duration (P99) for model m",
            "The 99th percentile request duration for model m has been above 10 seconds for "
            "5 minutes.",
        ),
        "InferenceHighTimeToFirstTokenP99": (
            "warning",
            model,
            "High time to first token (P99) for model m",
            "The 99th percentile time to first token for model m has been above 5 seconds for "
            "5 minutes.",
        ),
        "InferencePoolHighAverageQueueSize": (
            "warning",
            pool,
            "High average queue size for inference pool p",
            "The average number of requests queued in pool p has been above 50 for 5 minutes.",
        ),
        "InferencePoolHighKVCacheUtilization": (
            "critical",
            pool,
            "High KV cache utilization for inference pool p",
            "The average KV cache utilization of pool p has been above 90% for 5 minutes.",
        ),
        "InferencePoolNoReadyEndpoints": (
            "critical",
            pool,
            "No ready endpoints in inference pool p",
            "Inference pool p has had no ready model servers for 5 minutes.",
        ),
    }
    ratio = f"model_name:{errors.name.removesuffix('_total')}:ratio_rate5m"
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": alert,
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": severity, **labels},
                                "exp_annotations": {"title": title, "description": text},
                            }
                        ],
                    }
                    for alert, (severity, labels, title, text) in expected.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": f"round({record}, 0.001)",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": '{model_name="m"}', "value": value}],
                    }
                    for record, value in (
                        (ratio, 0.1),
                        (f"model_name:{duration.name}:p99_rate5m", 14.95),
                    )
                ],
            }
        ],
    }


@needs_promtool
@pytest.mark.parametrize("name", SHIPPED)
def test_promtool_test_rules_every_alert_fires_as_written(name: str, tmp_path: Path) -> None:
    shutil.copy(MONITORING / name / "rules.yaml", tmp_path / "rules.yaml")
    (tmp_path / "test.yaml").write_text(json.dumps(unit_test(SCHEMAS[name]), indent=1))
    alerts = [
        r["alert"] for g in rules(SCHEMAS[name])["groups"] for r in g["rules"] if "alert" in r
    ]
    assert len(alerts) == 6
    tested = subprocess.run(
        ["promtool", "test", "rules", "test.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout

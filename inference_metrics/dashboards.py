"""Our own Grafana dashboard and Prometheus rules, generated from a schema's catalogue.

A metric added to a schema is a panel added: every metric of the schema (its deprecated twins
aside, which exist for upstream's own dashboards) gets one panel whose queries follow from its
kind and labels:

* a counter: its per-second rate by its labels (the error counter: by ``error_code`` and model);
* a histogram: p50, p90 and p99 over all series (``sum by(le)``);
* a gauge: its value by its labels (the build-info gauge: by ``commit``, ``build_ref``).

Panels are grouped in rows by what feeds them (requests, latency, sizes and tokens, pool, build).
The rules are recording rules for the request rate, error ratio and latency quantiles by model,
and alerting rules on them and on the pool gauges, each present only when the schema has the
metric it needs. Both are plain data (:func:`dashboard`, :func:`rules`) rendered by
:func:`render_dashboard` (JSON) and :func:`render_rules` (YAML, every scalar JSON-quoted).

Under N worker processes nothing changes here: the queries aggregate with ``sum``, so one series
per worker (or one merged series) gives the same panels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .schemas import Role, Schema, SchemaMetric
from .spec import Kind, MetricSpec

__all__ = [
    "QUANTILES",
    "RATE_WINDOW",
    "dashboard",
    "panel_queries",
    "render_dashboard",
    "render_rules",
    "rules",
]

#: Histogram panels show these quantiles.
QUANTILES = (0.5, 0.9, 0.99)
#: The window of the recording rules (alerts fire on them after ``for: 5m``).
RATE_WINDOW = "5m"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

_ROWS: tuple[tuple[str, frozenset[Role]], ...] = (
    (
        "Requests",
        frozenset((Role.REQUEST_TOTAL, Role.REQUEST_ERROR_TOTAL, Role.RUNNING_REQUESTS)),
    ),
    (
        "Latency",
        frozenset((Role.REQUEST_DURATION, Role.TTFT, Role.TPOT, Role.NTPOT, Role.ITL)),
    ),
    (
        "Sizes and tokens",
        frozenset(
            (
                Role.REQUEST_SIZE,
                Role.RESPONSE_SIZE,
                Role.INPUT_TOKENS,
                Role.OUTPUT_TOKENS,
                Role.CACHED_TOKENS,
            )
        ),
    ),
    ("Pool", frozenset(r for r in Role if r.value.startswith("pool_"))),
    ("Build", frozenset((Role.INFO,))),
)

_UNITS = {"s": "s", "By": "bytes", "1": "percentunit"}


def _title(spec: MetricSpec) -> str:
    words = spec.name.removesuffix("_total").split("_")
    return " ".join(words)


def _by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def panel_queries(metric: SchemaMetric) -> list[tuple[str, str]]:
    """(legend, PromQL) for the panel of ``metric``; Grafana's ``$__rate_interval`` included."""
    spec = metric.spec
    if spec.kind is Kind.HISTOGRAM:
        bucket = f"{spec.name}_bucket"
        return [
            (
                f"p{round(q * 100)}",
                f"histogram_quantile({q}, sum by(le) (rate({bucket}[$__rate_interval])))",
            )
            for q in QUANTILES
        ]
    if spec.kind is Kind.COUNTER:
        labels: tuple[str, ...] = (
            ("error_code", "model_name")
            if metric.role is Role.REQUEST_ERROR_TOTAL
            else ("model_name", "target_model_name")
        )
        labels = tuple(label for label in labels if label in spec.labels)
        legend = " ".join("{{" + label + "}}" for label in labels)
        return [(legend, f"sum by({_by(labels)}) (rate({spec.name}[$__rate_interval]))")]
    legend = " ".join("{{" + label + "}}" for label in spec.labels)
    aggregate = "max" if metric.role is Role.INFO else "sum"
    return [(legend, f"{aggregate} by({_by(spec.labels)}) ({spec.name})")]


def _panel(metric: SchemaMetric, panel_id: int, x: int, y: int) -> dict[str, Any]:
    spec = metric.spec
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": _title(spec),
        "description": spec.help,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": _UNITS.get(spec.unit, "short")}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (legend, expr) in enumerate(panel_queries(metric))
        ],
    }


def dashboard(schema: Schema) -> dict[str, Any]:
    """The Grafana dashboard (JSON model) for ``schema``: one panel per current metric."""
    current = [m for m in schema if not m.deprecated_twin]
    panels: list[dict[str, Any]] = []
    y = 0
    for title, roles in _ROWS:
        metrics = [m for m in current if m.role in roles]
        if not metrics:
            continue
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for index, metric in enumerate(metrics):
            panels.append(_panel(metric, len(panels) + 1, 12 * (index % 2), y + 8 * (index // 2)))
        y += 8 * ((len(metrics) + 1) // 2)
    return {
        "title": f"Inference metrics ({schema.name})",
        "uid": f"inference-metrics-{schema.name}",
        "description": f"Generated by `inference-metrics docs --schema {schema.name} "
        "--format grafana` from the schema's catalogue; do not edit by hand.",
        "tags": ["inference-metrics", schema.name],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                }
            ]
        },
        "panels": panels,
    }


def _first(schema: Schema, role: Role) -> MetricSpec | None:
    for metric in schema:
        if metric.role is role and not metric.deprecated_twin:
            return metric.spec
    return None


def rules(schema: Schema) -> dict[str, Any]:
    """Prometheus recording and alerting rules for ``schema`` (the rule-file structure)."""
    w = RATE_WINDOW
    recording: list[dict[str, str]] = []
    alerting: list[dict[str, Any]] = []
    total = _first(schema, Role.REQUEST_TOTAL)
    errors = _first(schema, Role.REQUEST_ERROR_TOTAL)
    if total is not None:
        recording.append(
            {
                "record": f"model_name:{total.name}:rate{w}",
                "expr": f"sum by(model_name) (rate({total.name}[{w}]))",
            }
        )
    if total is not None and errors is not None:
        ratio = f"model_name:{errors.name.removesuffix('_total')}:ratio_rate{w}"
        recording.append(
            {
                "record": ratio,
                "expr": f"sum by(model_name) (rate({errors.name}[{w}])) / "
                f"sum by(model_name) (rate({total.name}[{w}]))",
            }
        )
        alerting.append(
            _alert(
                "InferenceHighErrorRate",
                f"{ratio} > 0.05",
                "critical",
                "High error rate for model {{ $labels.model_name }}",
                "More than 5% of the requests for model {{ $labels.model_name }} failed over "
                "the last 5 minutes ({{ $value | humanizePercentage }}).",
            )
        )
    latency_alerts = {
        Role.REQUEST_DURATION: ("InferenceHighRequestLatencyP99", 10.0, "request duration"),
        Role.TTFT: ("InferenceHighTimeToFirstTokenP99", 5.0, "time to first token"),
    }
    for role in (Role.REQUEST_DURATION, Role.TTFT, Role.TPOT, Role.NTPOT, Role.ITL):
        spec = _first(schema, role)
        if spec is None:
            continue
        for q in (0.5, 0.99):
            record = f"model_name:{spec.name}:p{round(q * 100)}_rate{w}"
            recording.append(
                {
                    "record": record,
                    "expr": f"histogram_quantile({q}, sum by(le, model_name) "
                    f"(rate({spec.name}_bucket[{w}])))",
                }
            )
        if role in latency_alerts:
            name, threshold, what = latency_alerts[role]
            alerting.append(
                _alert(
                    name,
                    f"{record} > {threshold}",
                    "warning",
                    f"High {what} (P99) for model {{{{ $labels.model_name }}}}",
                    f"The 99th percentile {what} for model {{{{ $labels.model_name }}}} has "
                    f"been above {threshold:g} seconds for 5 minutes.",
                )
            )
    pool_alerts = {
        Role.POOL_QUEUE_SIZE: (
            "InferencePoolHighAverageQueueSize",
            "> 50",
            "High average queue size for inference pool {{ $labels.name }}",
            "The average number of requests queued in pool {{ $labels.name }} has been above "
            "50 for 5 minutes.",
        ),
        Role.POOL_KV_CACHE: (
            "InferencePoolHighKVCacheUtilization",
            "> 0.9",
            "High KV cache utilization for inference pool {{ $labels.name }}",
            "The average KV cache utilization of pool {{ $labels.name }} has been above 90% "
            "for 5 minutes.",
        ),
        Role.POOL_READY: (
            "InferencePoolNoReadyEndpoints",
            "== 0",
            "No ready endpoints in inference pool {{ $labels.name }}",
            "Inference pool {{ $labels.name }} has had no ready model servers for 5 minutes.",
        ),
    }
    for role, (name, condition, title, description) in pool_alerts.items():
        spec = _first(schema, role)
        if spec is not None:
            severity = "warning" if role is Role.POOL_QUEUE_SIZE else "critical"
            alerting.append(_alert(name, f"{spec.name} {condition}", severity, title, description))
    return {
        "groups": [
            {"name": f"inference-metrics-{schema.name}-recording", "rules": recording},
            {"name": f"inference-metrics-{schema.name}-alerts", "rules": alerting},
        ]
    }


def _alert(name: str, expr: str, severity: str, title: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": "5m",
        "labels": {"severity": severity},
        "annotations": {"title": title, "description": description},
    }


def render_dashboard(schema: Schema) -> str:
    """The dashboard as the JSON file Grafana imports (sorted keys, 2-space indent)."""
    return json.dumps(dashboard(schema), indent=2, sort_keys=True) + "\n"


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list)):
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            body = _yaml(item, indent + 2)
            lines.append(f"{pad}- {body[0].lstrip()}")
            lines.extend(body[1:])
    return lines


def render_rules(schema: Schema) -> str:
    """The rules as a Prometheus rule file (YAML; every scalar a JSON-quoted string)."""
    header = (
        f"# Generated by `inference-metrics docs --schema {schema.name} --format rules` "
        "from the schema's catalogue; do not edit by hand."
    )
    return "\n".join([header, *_yaml(rules(schema), 0)]) + "\n"

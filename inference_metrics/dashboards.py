"""Our own Grafana dashboard and Prometheus rules, generated from a schema's views.

A metric added to a schema is a panel added: every view of the schema (its deprecated twins
aside, which exist for upstream's own dashboards) gets one panel, under the row its quantity's
:class:`~inference_metrics.quantities.Panel` names (a quantity cannot be made without one), with
queries that follow from its kind, its labels and that panel:

* a counter: its per-second rate by model and target model, or by the panel's ``by`` labels
  (the error counter: by ``error_code`` and model);
* a histogram: p50, p90 and p99 over all series (``sum by(le)`` of its ``_bucket`` series, or, in
  the native variant, ``sum`` of its native series); a latency whose observations can carry
  exemplars (its spec leaves them to the backend) asks Grafana to show them;
* a gauge: its value by its labels (or the panel's ``by``), summed or, for build info, ``max``.

Rows appear in the order the schema first uses them. The rules are recording rules for the
request rate, error ratio and the quantiles by model of every histogram in the Latency row, and
alerting rules on them and on the pool gauges, each present only when the schema shows the
quantity it needs. Both are plain data (:func:`dashboard`, :func:`rules`) rendered by
:func:`render_dashboard` (JSON) and :func:`render_rules` (YAML, every scalar JSON-quoted).

The **native variant** (``native=True``; ``inference-metrics docs --histograms native``) is for a
backend with ``histograms="native"`` or ``"both"`` scraped by a Prometheus with native histograms
on (docs/native-histograms.md): every histogram panel and quantile rule reads the native series
(``histogram_quantile(0.99, sum(rate(x[5m])))``), since Prometheus 2.x keeps no ``_bucket``
series of a native histogram (unless ``scrape_classic_histograms``, 2.45+). Rule names are the
same in both variants, so the alerts read whichever is loaded.

Under N worker processes nothing changes here: the queries aggregate with ``sum``, so one series
per worker (or one merged series) gives the same panels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import quantities as q
from .quantities import Quantity
from .schemas import Schema, View
from .spec import Kind, MetricSpec

__all__ = [
    "QUANTILES",
    "RATE_WINDOW",
    "dashboard",
    "panel_queries",
    "quantile_query",
    "render_dashboard",
    "render_rules",
    "rules",
]

#: Histogram panels show these quantiles.
QUANTILES = (0.5, 0.9, 0.99)
#: The window of the recording rules (alerts fire on them after ``for: 5m``).
RATE_WINDOW = "5m"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
#: The row whose histograms get recording rules for their quantiles.
LATENCY_ROW = q.REQUEST_DURATION.panel.row

_UNITS = {"s": "s", "By": "bytes", "1": "percentunit"}


def _title(spec: MetricSpec) -> str:
    words = spec.name.removesuffix("_total").split("_")
    return " ".join(words)


def _by(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def quantile_query(spec: MetricSpec, quantile: float, window: str, by: str, native: bool) -> str:
    """``histogram_quantile`` of ``spec``'s rate over ``window``, aggregated ``by`` those labels
    (comma-separated, maybe none): over the ``_bucket`` series by ``le``, or over the native
    series."""
    if native:
        aggregate = f"sum by({by})" if by else "sum"
        return f"histogram_quantile({quantile}, {aggregate} (rate({spec.name}[{window}])))"
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by({labels}) (rate({spec.name}_bucket[{window}])))"


def panel_queries(view: View, *, native: bool = False) -> list[tuple[str, str]]:
    """(legend, PromQL) for the panel of ``view``; Grafana's ``$__rate_interval`` included.
    ``native``: a histogram's queries read its native series."""
    spec, panel = view.spec, view.quantity.panel
    if spec.kind is Kind.HISTOGRAM:
        return [
            (
                f"p{round(quantile * 100)}",
                quantile_query(spec, quantile, "$__rate_interval", "", native),
            )
            for quantile in QUANTILES
        ]
    if spec.kind is Kind.COUNTER:
        by = ("model_name", "target_model_name") if panel.by is None else panel.by
        labels = tuple(label for label in by if label in spec.labels)
        legend = " ".join("{{" + label + "}}" for label in labels)
        return [(legend, f"sum by({_by(labels)}) (rate({spec.name}[$__rate_interval]))")]
    labels = spec.labels if panel.by is None else tuple(n for n in panel.by if n in spec.labels)
    legend = " ".join("{{" + label + "}}" for label in labels)
    return [(legend, f"{panel.aggregate} by({_by(labels)}) ({spec.name})")]


def _panel(view: View, panel_id: int, x: int, y: int, native: bool) -> dict[str, Any]:
    spec = view.spec
    # A latency whose spec leaves exemplars to the backend may carry them: Grafana shows them.
    exemplar = {"exemplar": True} if spec.kind is Kind.HISTOGRAM and spec.exemplars is None else {}
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
            {
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "refId": chr(65 + i),
                **exemplar,
            }
            for i, (legend, expr) in enumerate(panel_queries(view, native=native))
        ],
    }


def _variant(native: bool) -> tuple[str, str, str]:
    """(title suffix, uid suffix, the docs command's flag) of a variant."""
    if native:
        return " (native histograms)", "-native", " --histograms native"
    return "", "", ""


def dashboard(schema: Schema, *, native: bool = False) -> dict[str, Any]:
    """The Grafana dashboard (JSON model) for ``schema``: one panel per current view;
    ``native``: its histograms' panels read native series (the module docstring)."""
    title, uid, flag = _variant(native)
    current = [view for view in schema if not view.deprecated_twin]
    rows = dict.fromkeys(view.quantity.panel.row for view in current)
    panels: list[dict[str, Any]] = []
    y = 0
    for title in rows:
        metrics = [view for view in current if view.quantity.panel.row == title]
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
            x, at = 12 * (index % 2), y + 8 * (index // 2)
            panels.append(_panel(metric, len(panels) + 1, x, at, native))
        y += 8 * ((len(metrics) + 1) // 2)
    return {
        "title": f"Inference metrics ({schema.name}){title}",
        "uid": f"inference-metrics-{schema.name}{uid}",
        "description": f"Generated by `inference-metrics docs --schema {schema.name} "
        f"--format grafana{flag}` from the schema's catalogue; do not edit by hand.",
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


def _first(schema: Schema, quantity: Quantity) -> MetricSpec | None:
    view = schema.view(quantity)
    return None if view is None else view.spec


def rules(schema: Schema, *, native: bool = False) -> dict[str, Any]:
    """Prometheus recording and alerting rules for ``schema`` (the rule-file structure);
    ``native``: the quantile rules read native series (the module docstring)."""
    w = RATE_WINDOW
    recording: list[dict[str, str]] = []
    alerting: list[dict[str, Any]] = []
    total = _first(schema, q.REQUEST_TOTAL)
    errors = _first(schema, q.REQUEST_ERROR_TOTAL)
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
        q.REQUEST_DURATION: ("InferenceHighRequestLatencyP99", 10.0, "request duration"),
        q.TTFT: ("InferenceHighTimeToFirstTokenP99", 5.0, "time to first token"),
    }
    latency = [
        view
        for view in schema
        if not view.deprecated_twin
        and view.quantity.panel.row == LATENCY_ROW
        and view.spec.kind is Kind.HISTOGRAM
        and "model_name" in view.spec.labels
    ]
    for view in latency:
        spec, quantity = view.spec, view.quantity
        for quantile in (0.5, 0.99):
            record = f"model_name:{spec.name}:p{round(quantile * 100)}_rate{w}"
            recording.append(
                {"record": record, "expr": quantile_query(spec, quantile, w, "model_name", native)}
            )
        if quantity in latency_alerts:
            name, threshold, what = latency_alerts[quantity]
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
        q.POOL_QUEUE_SIZE: (
            "InferencePoolHighAverageQueueSize",
            "> 50",
            "High average queue size for inference pool {{ $labels.name }}",
            "The average number of requests queued in pool {{ $labels.name }} has been above "
            "50 for 5 minutes.",
        ),
        q.POOL_KV_CACHE: (
            "InferencePoolHighKVCacheUtilization",
            "> 0.9",
            "High KV cache utilization for inference pool {{ $labels.name }}",
            "The average KV cache utilization of pool {{ $labels.name }} has been above 90% "
            "for 5 minutes.",
        ),
        q.POOL_READY: (
            "InferencePoolNoReadyEndpoints",
            "== 0",
            "No ready endpoints in inference pool {{ $labels.name }}",
            "Inference pool {{ $labels.name }} has had no ready model servers for 5 minutes.",
        ),
    }
    for quantity, (name, condition, title, description) in pool_alerts.items():
        pool_spec = _first(schema, quantity)
        if pool_spec is not None:
            severity = "warning" if quantity is q.POOL_QUEUE_SIZE else "critical"
            alerting.append(
                _alert(name, f"{pool_spec.name} {condition}", severity, title, description)
            )
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


def render_dashboard(schema: Schema, *, native: bool = False) -> str:
    """The dashboard as the JSON file Grafana imports (sorted keys, 2-space indent)."""
    return json.dumps(dashboard(schema, native=native), indent=2, sort_keys=True) + "\n"


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


def render_rules(schema: Schema, *, native: bool = False) -> str:
    """The rules as a Prometheus rule file (YAML; every scalar a JSON-quoted string)."""
    _, _, flag = _variant(native)
    header = (
        f"# Generated by `inference-metrics docs --schema {schema.name} --format rules{flag}` "
        "from the schema's catalogue; do not edit by hand."
    )
    return "\n".join([header, *_yaml(rules(schema, native=native), 0)]) + "\n"

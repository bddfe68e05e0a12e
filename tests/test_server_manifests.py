"""The Kubernetes examples hold what the docs promise: the seed's RBAC, the gateway's delegation
permission, and a Prometheus configuration that promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MANIFESTS = Path(__file__).resolve().parent.parent / "examples" / "kubernetes"


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (the Debian prometheus package)")
    # promtool checks that credentials_file exists: point it at a stand-in token.
    token = tmp_path / "token"
    token.write_text("t\n")
    config = (MANIFESTS / "prometheus.yml").read_text()
    assert "credentials_file: /etc/prometheus/secrets/metrics-reader/token" in config
    checked = tmp_path / "prometheus.yml"
    checked.write_text(config.replace("/etc/prometheus/secrets/metrics-reader/token", str(token)))
    result = subprocess.run(
        [promtool, "check", "config", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scraper_role_is_the_seeds() -> None:
    text = (MANIFESTS / "metrics-reader.yaml").read_text()
    assert (
        "kind: ClusterRole\nmetadata:\n  name: inference-gateway-metrics-reader\nrules:\n" in text
    )
    assert "- nonResourceURLs:\n  - /metrics\n  verbs:\n  - get\n" in text
    assert "type: kubernetes.io/service-account-token" in text
    assert "kubernetes.io/service-account.name: inference-gateway-sa-metrics-reader" in text


def test_the_gateway_may_delegate_and_serves_on_9090() -> None:
    text = (MANIFESTS / "gateway.yaml").read_text()
    assert "  kind: ClusterRole\n  name: system:auth-delegator\n" in text
    assert "serviceAccountName: inference-gateway\n" in text
    assert '"--auth", "kubernetes"' in text
    assert "containerPort: 9090" in text


def test_the_service_monitor_uses_the_readers_secret() -> None:
    text = (MANIFESTS / "servicemonitor.yaml").read_text()
    assert "name: inference-gateway-sa-metrics-reader-secret\n        key: token" in text

"""The Kubernetes examples hold what the docs promise: the seed's RBAC, the gateway's delegation
permission, and a Prometheus configuration that promtool accepts."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "examples" / "kubernetes"
EXT_PROC = ROOT / "examples" / "ext_proc"


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


def test_the_dockerfile_builds_the_image_the_gateway_runs() -> None:
    import dockerfile

    path = MANIFESTS / "Dockerfile"
    commands = dockerfile.parse_file(str(path))
    by_name: dict[str, list[dockerfile.Command]] = {}
    for command in commands:
        by_name.setdefault(command.cmd.upper(), []).append(command)
    # The tag gateway.yaml runs is the one the build line in the Dockerfile makes.
    gateway = (MANIFESTS / "gateway.yaml").read_text()
    assert "image: inference-metrics-demo:latest" in gateway
    assert "-t inference-metrics-demo:latest" in path.read_text()
    # Every file it copies exists in the repository (the build context is the repository root).
    for copy in by_name["COPY"]:
        *sources, _ = copy.value
        for source in sources:
            assert (ROOT / source).exists(), source
    # gateway.yaml runs it as a non-root user with a read-only root: a numeric non-root USER.
    (user,) = by_name["USER"]
    uid = user.value[0].split(":")[0]
    assert uid.isdecimal()
    assert int(uid) != 0
    assert by_name["ENTRYPOINT"][-1].value == ("inference-metrics",)
    assert by_name["EXPOSE"][-1].value == ("9090",)
    assert '"inference-metrics", "demo"' in gateway  # the command the gateway overrides CMD with


def envoy_config() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envoy_config", EXT_PROC / "envoy_config.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_envoy_config_with_default_ports_is_the_shipped_file() -> None:
    rendered = subprocess.run(
        [sys.executable, str(EXT_PROC / "envoy_config.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert rendered == (EXT_PROC / "envoy.yaml").read_text()


def test_envoy_config_moves_each_port_and_nothing_else() -> None:
    shipped = (EXT_PROC / "envoy.yaml").read_text()
    ports = {"admin": 19901, "listener": 18080, "picker": 19002, "upstream": 18000}
    rendered = envoy_config().render(ports)
    for port in ports.values():
        assert f"port_value: {port} " in rendered
    changed = [
        (old, new)
        for old, new in zip(shipped.splitlines(), rendered.splitlines(), strict=True)
        if old != new
    ]
    assert len(changed) == 4


@pytest.mark.parametrize("ports", [{"listener": 0}, {"listener": 70000}, {"gateway": 1}])
def test_envoy_config_refuses_bad_ports(ports: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"listener|gateway"):
        envoy_config().render(ports)

"""``ServerConfig``: the metrics server's one configuration value, and the server made from it."""

from __future__ import annotations

import dataclasses

import pytest

from inference_metrics.server import MetricsServer, NoAuth, ServerConfig, ServerLimits

from .server_support import get, recorded_registry


def test_a_server_made_from_a_config_serves_what_the_config_says() -> None:
    limits = ServerLimits(max_connections=8)
    config = ServerConfig(
        auth=NoAuth(),
        registry=recorded_registry(),
        host="127.0.0.1",
        port=0,
        limits=limits,
        readiness=lambda: False,
    )
    server = MetricsServer.from_config(config)
    assert server.config == config
    assert server.limits is limits
    with server:
        assert b"inference_model_request_total" in get(server).body
        assert get(server, "/readyz").status == 503
        assert server.url == f"http://127.0.0.1:{server.port}"


def test_the_servers_arguments_make_its_config() -> None:
    auth = NoAuth()
    server = MetricsServer(auth=auth, host="::1", port=9191)
    assert server.config == ServerConfig(auth=auth, host="::1", port=9191)
    assert server.config.limits == ServerLimits()
    assert server.url == "http://[::1]:9191"


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"auth": "token"}, TypeError, "auth must be an Authenticator"),
        ({"auth": NoAuth(), "port": 70000}, ValueError, "port must be in 0..65535, got 70000"),
        ({"auth": NoAuth(), "port": -1}, ValueError, "port must be in 0..65535, got -1"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(
    arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ServerConfig(**arguments)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        MetricsServer(**arguments)  # type: ignore[arg-type]


def test_a_config_cannot_be_changed_once_made() -> None:
    config = ServerConfig(auth=NoAuth())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_from_config_takes_only_a_config() -> None:
    with pytest.raises(TypeError, match="config must be a ServerConfig"):
        MetricsServer.from_config({"auth": NoAuth()})  # type: ignore[arg-type]

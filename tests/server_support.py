"""Helpers for the exposition-server tests: a server, requests, TLS files, a stand-in API server.

* :func:`running_server`: a :class:`MetricsServer` on 127.0.0.1 and a free port, in its thread.
* :func:`get` / :func:`raw_exchange`: an HTTP(S) request with http.client, or raw bytes.
* :class:`TLSMaterial`: trustme CA, server and client certificates written as PEM files.
* :class:`KubeStandIn`: a stand-in Kubernetes API server over HTTPS that speaks the exact
  TokenReview and SubjectAccessReview wire format, checks every request body and the caller's own
  bearer token, evaluates a tiny RBAC table, and records what it received. No real API server runs
  in the test environment; this one answers exactly as the API server documents.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.server import Authenticator, MetricsServer, ServerLimits, ServerTLS
from inference_metrics.server.kubernetes import ACCESS_REVIEW_PATH, TOKEN_REVIEW_PATH

__all__ = [
    "GatedCollector",
    "KubeStandIn",
    "Reply",
    "StandInUser",
    "TLSMaterial",
    "get",
    "raw_exchange",
    "recorded_registry",
    "running_asgi",
    "running_server",
]


class GatedCollector(Collector):
    """A collector that counts its calls, signals ``entered`` and then waits for ``release``:
    a render held in progress for as long as a test needs."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        self.entered.release()
        self.release.wait(30)
        yield GaugeMetricFamily("gated_gauge", "A gauge that waits to be let through.", value=1.0)

    def registry(self) -> CollectorRegistry:
        """A registry holding only this collector."""
        registry = CollectorRegistry()
        registry.register(self)
        return registry


def recorded_registry() -> CollectorRegistry:
    """A private registry with a few seed metrics recorded (fixed values)."""
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_request_counter("llama", "llama-lora")
    recorder.record_request_size("llama", "llama-lora", 1200)
    recorder.record_request_latency("llama", "llama-lora", 10.0, 10.25)
    recorder.record_pool_kv_cache_utilization("pool-a", 0.5)
    return registry


@contextlib.contextmanager
def running_server(
    auth: Authenticator,
    *,
    registry: Any = None,
    tls: ServerTLS | None = None,
    limits: ServerLimits | None = None,
    **kwargs: Any,
) -> Iterator[MetricsServer]:
    server = MetricsServer(
        auth=auth,
        registry=registry if registry is not None else recorded_registry(),
        host="127.0.0.1",
        port=0,
        tls=tls,
        limits=limits,
        **kwargs,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_asgi(app: Any) -> Iterator[int]:
    """``app`` under a real uvicorn (lifespan on) on 127.0.0.1 and a free port, in a thread;
    yields the port."""
    from .uvicorn_harness import serve

    with serve(app, lifespan="on") as url:
        yield int(url.rsplit(":", 1)[1])


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def get(
    server: MetricsServer | int,
    path: str = "/metrics",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request on a new connection (to a server, or to a plain-HTTP port)."""
    connection: http.client.HTTPConnection
    if isinstance(server, int):
        connection = http.client.HTTPConnection("127.0.0.1", server, timeout=timeout)
    elif server.tls is not None:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=context, timeout=timeout
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(method, path, headers=dict(headers or {}))
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new plain connection; everything received until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (FIN or RST) rather than leaving it open (timeout)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


class TLSMaterial:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as files."""

    def __init__(self, directory: Path, *, ca: trustme.CA | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = ca or trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = directory / "tls.crt"
        self.key_file = directory / "tls.key"
        #: The current server certificate (DER).
        self.leaf_der = self.issue_server_cert()

    def issue_server_cert(self) -> bytes:
        """(Re)write the server certificate and key; returns the new leaf certificate (DER)."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        leaf.private_key_pem.write_to_path(str(self.key_file))
        with open(self.cert_file, "wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        self.leaf_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
        return self.leaf_der

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def client_cert_context(
        self, client_ca: trustme.CA, name: str = "prometheus"
    ) -> ssl.SSLContext:
        """A client context trusting this CA and presenting a certificate from ``client_ca``."""
        context = self.client_context()
        client_ca.issue_cert(name).configure_cert(context)
        return context


# ----------------------------------------------------------------------------------- stand-in


@dataclass(frozen=True)
class StandInUser:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, list[str]] = field(default_factory=dict)
    #: The audiences the token is valid for (the API server's own by default).
    audiences: tuple[str, ...] = ("https://kubernetes.default.svc",)

    def to_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "uid": self.uid,
            "groups": list(self.groups),
            "extra": {k: list(v) for k, v in self.extra.items()},
        }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


_TOKEN_REVIEW_SPEC_KEYS = {"token", "audiences"}
_ACCESS_REVIEW_SPEC_KEYS = {"user", "groups", "uid", "extra", "nonResourceAttributes"}


def kube_status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes API ``Status`` object reporting a failure."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubeStandIn:
    """A stand-in Kubernetes API server (HTTPS) for TokenReview and SubjectAccessReview.

    ``tokens`` maps bearer tokens to users; ``allow`` / ``deny`` hold ``(username, path, verb)``
    RBAC outcomes (anything else has no opinion: allowed false, denied false). Only requests
    carrying ``Authorization: Bearer <server_token>`` are served (401 otherwise). Every request
    body is checked field by field; anything unexpected is recorded in :attr:`problems` and
    answered 400. Knobs for failure tests: :attr:`delay` (seconds before answering),
    :attr:`fail_status` (answer that HTTP status with a Status object),
    :attr:`echo_token_in_error` (a rejected token's error message contains the token).
    """

    def __init__(
        self,
        material: TLSMaterial,
        *,
        server_token: str,
        tokens: Mapping[str, StandInUser],
        allow: set[tuple[str, str, str]] | None = None,
        deny: set[tuple[str, str, str]] | None = None,
    ) -> None:
        self.material = material
        self.server_token = server_token
        self.tokens = dict(tokens)
        self.allow = set(allow or ())
        self.deny = set(deny or ())
        self.delay = 0.0
        self.fail_status: int | None = None
        self.echo_token_in_error = False
        self.evaluation_error = ""
        self.received: list[Received] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.path == path)

    @property
    def token_reviews(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == TOKEN_REVIEW_PATH]

    @property
    def access_reviews(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == ACCESS_REVIEW_PATH]

    def start(self) -> KubeStandIn:
        stand_in = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf = self.material.ca.issue_cert("127.0.0.1", "localhost")
        leaf.configure_cert(context)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                stand_in._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = self.socket.accept()
                # The handshake happens in the handler's thread, never on the accept path.
                return (
                    context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False),
                    address,
                )

        self._server = Server(("127.0.0.1", 0), Handler)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------------- the handler

    def _problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.received.append(Received(handler.path, dict(handler.headers.items()), body))
        if self.delay:
            self._release.wait(self.delay)
        if handler.headers.get("Authorization") != f"Bearer {self.server_token}":
            return self._status(handler, 401, "Unauthorized", "Unauthorized")
        if self.fail_status is not None:
            return self._status(handler, self.fail_status, "InternalError", "stand-in failure")
        if handler.headers.get("Content-Type") != "application/json":
            self._problem(f"Content-Type {handler.headers.get('Content-Type')!r}")
            return self._status(handler, 415, "UnsupportedMediaType", "want application/json")
        if handler.path == TOKEN_REVIEW_PATH:
            reply = self._token_review(body)
        elif handler.path == ACCESS_REVIEW_PATH:
            reply = self._access_review(body)
        else:
            self._problem(f"unexpected path {handler.path!r}")
            return self._status(handler, 404, "NotFound", "the server could not find it")
        if reply is None:
            return self._status(handler, 400, "BadRequest", "malformed review")
        self._send(handler, 201, reply)

    def _token_review(self, body: Any) -> dict[str, Any] | None:
        if not (
            isinstance(body, dict)
            and set(body) == {"apiVersion", "kind", "spec"}
            and body["apiVersion"] == "authentication.k8s.io/v1"
            and body["kind"] == "TokenReview"
            and isinstance(body["spec"], dict)
            and set(body["spec"]) <= _TOKEN_REVIEW_SPEC_KEYS
            and isinstance(body["spec"].get("token"), str)
        ):
            self._problem(f"malformed TokenReview: keys {sorted(body) if body else body}")
            return None
        spec = body["spec"]
        requested = spec.get("audiences") or []
        user = self.tokens.get(spec["token"])
        status: dict[str, Any] = {"user": {}}
        if user is None:
            message = "invalid bearer token"
            if self.echo_token_in_error:
                message += f": {spec['token']}"
            status["error"] = f"[{message}, service account token has been invalidated]"
        elif requested and not set(requested) & set(user.audiences):
            status["error"] = "token audiences are invalid for the target audiences"
        else:
            status = {
                "authenticated": True,
                "user": user.to_json(),
                "audiences": [a for a in requested if a in user.audiences] or list(user.audiences),
            }
        # The API server echoes the spec back, token included.
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }

    def _access_review(self, body: Any) -> dict[str, Any] | None:
        spec = body.get("spec") if isinstance(body, dict) else None
        if not (
            isinstance(body, dict)
            and set(body) == {"apiVersion", "kind", "spec"}
            and body["apiVersion"] == "authorization.k8s.io/v1"
            and body["kind"] == "SubjectAccessReview"
            and isinstance(spec, dict)
            and set(spec) == _ACCESS_REVIEW_SPEC_KEYS
            and isinstance(spec["user"], str)
            and isinstance(spec["uid"], str)
            and isinstance(spec["groups"], list)
            and isinstance(spec["extra"], dict)
            and isinstance(spec["nonResourceAttributes"], dict)
            and set(spec["nonResourceAttributes"]) == {"path", "verb"}
        ):
            self._problem(f"malformed SubjectAccessReview: {body!r}")
            return None
        attributes = spec["nonResourceAttributes"]
        key = (spec["user"], attributes["path"], attributes["verb"])
        status: dict[str, Any]
        if key in self.deny:
            status = {"allowed": False, "denied": True, "reason": "denied by stand-in policy"}
        elif key in self.allow:
            status = {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "metrics-reader"',
            }
        else:
            status = {"allowed": False}
        if self.evaluation_error:
            status["evaluationError"] = self.evaluation_error
        return {
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }

    def _status(
        self, handler: BaseHTTPRequestHandler, code: int, reason: str, message: str
    ) -> None:
        self._send(handler, code, kube_status(code, reason, message))

    def _send(self, handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

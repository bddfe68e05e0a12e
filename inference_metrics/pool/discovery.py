"""Where the pool's endpoints come from: a static list, a DNS name, or the Kubernetes API.

Each discovery has ``async run(update)``: it calls ``update`` with the whole current endpoint
set, and keeps doing so as the set changes (DNS, Kubernetes) or returns (static).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..net.client import HTTPError
from .endpoints import Endpoint, metrics_url
from .profiles import DEFAULT_ENGINE, ENGINE_LABELS

if TYPE_CHECKING:
    from ..server.kubernetes import KubernetesConfig
    from ..server.kubernetes.api import KubernetesAPI

__all__ = ["DNSDiscovery", "KubernetesDiscovery", "StaticDiscovery"]

logger = logging.getLogger(__name__)

Update = Callable[[Sequence[Endpoint]], None]
Resolver = Callable[[str, int], Awaitable[list[str]]]


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port!r}")
    return port


def _check_scheme_path(scheme: str, path: str) -> None:
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme must be 'http' or 'https', got {scheme!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")


class StaticDiscovery:
    """A fixed list of endpoints."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        for endpoint in self.endpoints:
            if not isinstance(endpoint, Endpoint):
                raise TypeError(f"endpoints must be Endpoint objects, got {endpoint!r}")

    async def run(self, update: Update) -> None:
        update(self.endpoints)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class DNSDiscovery:
    """Every address a DNS name resolves to (a headless Service's pods), re-resolved every
    ``interval`` seconds. An endpoint's name is its address (DNS does not say the pod's name).
    A failed lookup keeps the last set (a resolver hiccup must not empty the pool)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        engine: str = DEFAULT_ENGINE,
        scheme: str = "http",
        path: str = "/metrics",
        interval: float = 5.0,
        resolve: Resolver = _getaddrinfo,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a DNS name, got {host!r}")
        self.host = host
        self.port = _check_port(port)
        _check_scheme_path(scheme, path)
        if not (isinstance(interval, int | float) and interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.engine, self.scheme, self.path, self.interval = engine, scheme, path, float(interval)
        self._resolve = resolve

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> DNSDiscovery:
        """``NAME:PORT`` (the ``--dns`` flag); ValueError names a malformed one."""
        host, sep, port = spec.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--dns takes NAME:PORT, got {spec!r}")
        return cls(host.strip("[]"), int(port), **options)

    async def resolve_once(self) -> list[Endpoint]:
        addresses = sorted(set(await self._resolve(self.host, self.port)))
        return [
            Endpoint(
                name=address,
                url=metrics_url(address, self.port, scheme=self.scheme, path=self.path),
                engine=self.engine,
            )
            for address in addresses
        ]

    async def run(self, update: Update) -> None:
        last_logged = -math.inf
        while True:
            try:
                update(await self.resolve_once())
            except (OSError, ValueError) as exc:  # socket.gaierror; UnicodeError for a bad name
                if time.monotonic() - last_logged >= 60.0:
                    last_logged = time.monotonic()
                    logger.warning(
                        "cannot resolve %s: %s (keeping the last endpoints)", self.host, exc
                    )
            await asyncio.sleep(self.interval)


class _Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410 or an ERROR event): list again."""


class _Failed(Exception):
    """A list or watch that did not work, in our words (logged as is)."""


#: Largest list reply read (a pool's pods or EndpointSlices; thousands of pods fit).
MAX_LIST_BYTES = 64 << 20
#: Largest watch event (one object) read.
MAX_EVENT_BYTES = 16 << 20


class KubernetesDiscovery:
    """The ready endpoints of a Service (its EndpointSlices) or of the pods matching a label
    selector, listed then watched through the Kubernetes API with the pod's service account.

    ``port``: the metrics port, a number, or a port *name* (looked up in the EndpointSlice's
    ports, or the pod's container ports); None with a Service: the slice's first port.
    Pods choose their engine with the label ``llm-d.ai/engine-type`` (or the legacy
    ``inference.networking.k8s.io/engine-type``), else ``engine``. EndpointSlices carry no pod
    labels: their endpoints use ``engine``.

    The API client needs read access: ``list``/``watch`` on ``endpointslices``
    (``discovery.k8s.io``) or ``pods`` in ``namespace``.
    """

    def __init__(
        self,
        config: KubernetesConfig,
        namespace: str,
        *,
        service: str | None = None,
        selector: str | None = None,
        port: int | str | None = None,
        engine: str = DEFAULT_ENGINE,
        scheme: str = "http",
        path: str = "/metrics",
        watch_timeout: int = 300,
        retry_interval: float = 1.0,
    ) -> None:
        if (service is None) == (selector is None):
            raise ValueError("give exactly one of service= or selector=")
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        if isinstance(port, int) and not isinstance(port, bool):
            _check_port(port)
        elif port is not None and (not isinstance(port, str) or not port):
            raise ValueError(f"port must be a number or a port name, got {port!r}")
        if selector is not None and port is None:
            raise ValueError("port is required with selector= (pods have no single port)")
        _check_scheme_path(scheme, path)
        self.config = config
        self.namespace = namespace
        self.service = service
        self.selector = selector
        self.port = port
        self.engine, self.scheme, self.path = engine, scheme, path
        self.watch_timeout = watch_timeout
        self.retry_interval = retry_interval
        self._objects: dict[str, list[Endpoint]] = {}

    # --- API paths ---------------------------------------------------------------------------

    @property
    def collection_path(self) -> str:
        ns = quote(self.namespace, safe="")
        if self.service is not None:
            return f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        return f"/api/v1/namespaces/{ns}/pods"

    @property
    def label_selector(self) -> str:
        if self.service is not None:
            return f"kubernetes.io/service-name={self.service}"
        assert self.selector is not None
        return self.selector

    # --- objects to endpoints ----------------------------------------------------------------

    def _url(self, address: str, port: int) -> str:
        return metrics_url(address, port, scheme=self.scheme, path=self.path)

    def endpoints_of(self, obj: Mapping[str, Any]) -> list[Endpoint]:
        """The ready endpoints one EndpointSlice or Pod object describes (malformed: none)."""
        try:
            if self.service is not None:
                return self._slice_endpoints(obj)
            return self._pod_endpoints(obj)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return []

    def _slice_endpoints(self, obj: Mapping[str, Any]) -> list[Endpoint]:
        ports = obj.get("ports") or []
        port: int | None = None
        if isinstance(self.port, int):
            port = self.port
        else:
            for entry in ports:
                if self.port is None or entry.get("name") == self.port:
                    port = int(entry["port"])
                    break
        if port is None:
            return []
        found = []
        for item in obj.get("endpoints") or []:
            conditions = item.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            addresses = item.get("addresses") or []
            if not addresses:
                continue
            address = str(addresses[0])
            ref = item.get("targetRef") or {}
            name = ref.get("name") if ref.get("kind") == "Pod" else None
            found.append(
                Endpoint(
                    name=str(name or address), url=self._url(address, port), engine=self.engine
                )
            )
        return found

    def _pod_endpoints(self, obj: Mapping[str, Any]) -> list[Endpoint]:
        metadata = obj["metadata"]
        status = obj.get("status") or {}
        if metadata.get("deletionTimestamp") or status.get("phase") != "Running":
            return []
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        address = status.get("podIP")
        if not ready or not address:
            return []
        port: int | None = self.port if isinstance(self.port, int) else None
        if port is None:
            for container in (obj.get("spec") or {}).get("containers") or []:
                for entry in container.get("ports") or []:
                    if entry.get("name") == self.port:
                        port = int(entry["containerPort"])
        if port is None:
            return []
        labels = metadata.get("labels") or {}
        engine = next((labels[k] for k in ENGINE_LABELS if labels.get(k)), self.engine)
        return [
            Endpoint(name=str(metadata["name"]), url=self._url(str(address), port), engine=engine)
        ]

    def current(self) -> list[Endpoint]:
        seen: dict[str, Endpoint] = {}
        for endpoints in self._objects.values():
            for endpoint in endpoints:
                seen.setdefault(endpoint.name, endpoint)
        return sorted(seen.values(), key=lambda e: e.name)

    # --- list and watch ---------------------------------------------------------------------

    async def _list(self, api: KubernetesAPI) -> str:
        query = {"labelSelector": self.label_selector}
        async with api.request("GET", self.collection_path, query=query) as response:
            if response.status != 200:
                raise _Failed(f"listing {self.collection_path} answered HTTP {response.status}")
            body = json.loads(await response.read(MAX_LIST_BYTES))
        self._objects = {
            str(item["metadata"]["name"]): self.endpoints_of(item)
            for item in body.get("items") or []
        }
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, api: KubernetesAPI, version: str, update: Update) -> str:
        query = {
            "labelSelector": self.label_selector,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        # The API server ends a watch after timeoutSeconds and sends bookmarks meanwhile: a
        # stream silent for longer than that is a dead connection.
        silence = self.watch_timeout + 30
        async with api.request("GET", self.collection_path, query=query) as response:
            if response.status == 410:
                raise _Gone
            if response.status != 200:
                raise _Failed(f"watching {self.collection_path} answered HTTP {response.status}")
            lines = response.lines(MAX_EVENT_BYTES)
            while True:
                try:
                    async with asyncio.timeout(silence):
                        line = await anext(lines)
                except StopAsyncIteration:
                    return version  # the server ended the watch: watch again from here
                except TimeoutError:
                    raise _Failed(f"the watch was silent for {silence} s") from None
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise _Failed(f"the watch answered an ERROR event (code {obj.get('code')})")
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                name = str(obj["metadata"]["name"])
                if kind == "DELETED":
                    self._objects.pop(name, None)
                else:
                    self._objects[name] = self.endpoints_of(obj)
                update(self.current())

    async def run(self, update: Update) -> None:
        from ..server.kubernetes.api import KubernetesAPI

        last_logged = -math.inf
        api = KubernetesAPI(self.config)
        try:
            while True:
                try:
                    version = await self._list(api)
                    update(self.current())
                    while True:
                        version = await self._watch(api, version, update)
                except _Gone:
                    continue  # list again at once
                except (_Failed, HTTPError) as exc:
                    problem = str(exc)  # our own words: no reply text, no token
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # JSON of another shape than the API's; the library's message is not ours
                    problem = f"a reply of another shape than the API's ({type(exc).__name__})"
                # Keep the last endpoints: an API hiccup must not empty the pool.
                if time.monotonic() - last_logged >= 60.0:
                    last_logged = time.monotonic()
                    logger.warning(
                        "Kubernetes discovery of %s: %s; retrying", self.collection_path, problem
                    )
                await asyncio.sleep(self.retry_interval)
        finally:
            await api.aclose()

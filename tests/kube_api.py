"""A stand-in Kubernetes API server for pool discovery: list and watch of EndpointSlices and
Pods over HTTPS, in the API server's JSON (``…List`` objects with ``metadata.resourceVersion``;
watch streams of newline-separated ``{"type", "object"}`` events, ``BOOKMARK``s, and an
``ERROR`` event carrying a 410 ``Status`` when the client's resourceVersion is too old).

Only requests with ``Authorization: Bearer <token>`` are served (401 ``Status`` otherwise). Every
request's path and query is kept in :attr:`KubeAPI.requests`. A watch from a resourceVersion
first replays the events after it, as the API server's watch cache does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .server_support import TLSMaterial
from .server_support import kube_status as status

SLICES = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
PODS = "/api/v1/namespaces/{namespace}/pods"


def _metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def endpoint_slice(
    name: str,
    service: str,
    endpoints: list[tuple[str, str, bool]],
    *,
    port: int,
    port_name: str = "http",
    namespace: str = "default",
) -> dict[str, Any]:
    """An EndpointSlice of ``service``: ``(pod name, address, ready)`` endpoints on one port."""
    labels = {
        "kubernetes.io/service-name": service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    owner = {"apiVersion": "v1", "kind": "Service", "name": service}
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {**_metadata(name, namespace, labels), "ownerReferences": [owner]},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [address],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": "node-1",
                "targetRef": {
                    "kind": "Pod",
                    "name": pod,
                    "namespace": namespace,
                    "uid": f"uid-{pod}",
                },
            }
            for pod, address, ready in endpoints
        ],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


def pod(
    name: str,
    address: str,
    port: int,
    *,
    labels: dict[str, str] | None = None,
    ready: bool = True,
    phase: str = "Running",
    namespace: str = "default",
) -> dict[str, Any]:
    """A Pod with one container exposing ``port`` as the port named ``metrics``."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _metadata(name, namespace, labels or {}),
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:latest",
                    "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
                }
            ]
        },
        "status": {
            "phase": phase,
            "podIP": address,
            "podIPs": [{"ip": address}],
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


@dataclass
class KubeAPI:
    """The stand-in. ``objects[collection path][name]`` is the stored state; :meth:`put` and
    :meth:`delete` change it and tell every watcher, as the API server does."""

    material: TLSMaterial
    token: str
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    version: int = 100
    expire_watches: bool = False
    #: When set, every list is answered 200 with this body instead.
    list_body: bytes | None = None
    _watchers: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        return stored

    def put(self, collection: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        kind = "MODIFIED" if name in self.objects.setdefault(collection, {}) else "ADDED"
        stored = self._bump(obj)
        self.objects[collection][name] = stored
        self._tell({"type": kind, "object": stored})

    def delete(self, collection: str, name: str) -> None:
        stored = self._bump(self.objects[collection].pop(name))
        self._tell({"type": "DELETED", "object": stored})

    def _tell(self, event: dict[str, Any]) -> None:
        self.events.append((self.version, event))
        for queue in self._watchers:
            queue.put_nowait(event)

    def end_watches(self) -> None:
        for queue in self._watchers:
            queue.put_nowait(None)

    def _matches(self, obj: dict[str, Any], selector: str) -> bool:
        labels = obj["metadata"].get("labels") or {}
        for term in filter(None, selector.split(",")):
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(status(401, "Unauthorized", "Unauthorized"), status=401)
        collection = request.path
        selector = request.query.get("labelSelector", "")
        items = [o for o in self.objects.get(collection, {}).values() if self._matches(o, selector)]
        if request.query.get("watch") not in ("1", "true"):
            if self.list_body is not None:
                return web.Response(body=self.list_body, content_type="application/json")
            kind = "EndpointSliceList" if "endpointslices" in collection else "PodList"
            api_version = "discovery.k8s.io/v1" if "endpointslices" in collection else "v1"
            return web.json_response(
                {
                    "kind": kind,
                    "apiVersion": api_version,
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": items,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if self.expire_watches:
            self.expire_watches = False
            gone = status(410, "Expired", "too old resource version: 1 (100)")
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            await response.write_eof()
            return response
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        # Events after the client's version first (no await between: none lost, none twice).
        since = int(request.query.get("resourceVersion") or 0)
        for version, old in self.events:
            if version > since:
                queue.put_nowait(old)
        bookmark = {"kind": "Pod", "metadata": {"resourceVersion": str(self.version)}}
        queue.put_nowait({"type": "BOOKMARK", "object": bookmark})
        self._watchers.append(queue)
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                if event["type"] == "BOOKMARK" or self._matches(event["object"], selector):
                    await response.write(json.dumps(event).encode() + b"\n")
        finally:
            self._watchers.remove(queue)
        await response.write_eof()
        return response

    async def start(self) -> KubeAPI:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.material.cert_file, self.material.key_file)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self.end_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

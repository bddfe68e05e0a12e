"""A gateway process that records the endpoint picker's metrics and serves them on a guarded
``/metrics``, the way upstream's EPP does (port 9090, bearer token required).

The "gateway" here is simulated traffic recorded on an asyncio loop; the metrics server shares that
loop (``async with MetricsServer(...)``) and builds each exposition in a worker thread, so a scrape
never blocks request handling. Who may scrape:

* in a Kubernetes pod (``KUBERNETES_SERVICE_HOST`` is set): any identity the cluster's RBAC allows
  ``get`` on the non-resource URL ``/metrics`` (TokenReview + SubjectAccessReview, as upstream);
  see ``examples/kubernetes/``;
* elsewhere, with ``--token-file``: the bearer tokens listed in that file (one per line);
* otherwise nobody but loopback clients, without authentication.

Run it::

    echo "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" > /tmp/metrics-token
    python examples/exposition_server.py --port 9090 --token-file /tmp/metrics-token
    curl -s -H "Authorization: Bearer $(cat /tmp/metrics-token)" 127.0.0.1:9090/metrics
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import time

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.server import (
    Authenticator,
    KubernetesAuthenticator,
    MetricsServer,
    NoAuth,
    TokenFileAuthenticator,
)
from inference_metrics.simulate import simulate_pools, simulate_request


def choose_auth(token_file: str | None) -> tuple[Authenticator, str]:
    """The authenticator and the address to listen on."""
    if token_file:
        return TokenFileAuthenticator(token_file), "0.0.0.0"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubernetesAuthenticator.in_cluster(), "0.0.0.0"
    return NoAuth(), "127.0.0.1"


async def gateway(recorder: Recorder, stop: asyncio.Event, rate: float) -> None:
    """Stands in for the request path: records one simulated request every 1/rate seconds."""
    rng = random.Random()
    simulate_pools(recorder, rng)
    while not stop.is_set():
        simulate_request(recorder, rng, time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0 / rate)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--host", default=None, help="default: all interfaces when guarded")
    parser.add_argument("--token-file", default=os.environ.get("METRICS_TOKEN_FILE"))
    parser.add_argument("--rate", type=float, default=20.0, help="simulated requests per second")
    args = parser.parse_args()

    auth, default_host = choose_auth(args.token_file)
    # prometheus_client's default REGISTRY: what a gateway records, next to process metrics.
    recorder = Recorder(PrometheusBackend())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async with MetricsServer(auth=auth, host=args.host or default_host, port=args.port) as server:
        print(f"serving {server.url}/metrics with {auth!r}; Ctrl-C to stop", flush=True)
        await gateway(recorder, stop, args.rate)
    # Leaving the block stopped the server gracefully: scrapes in progress finished.


if __name__ == "__main__":
    asyncio.run(main())

"""Quickstart: record one request the way upstream's endpoint picker does, serve it with this
package's exposition server, and print what a Prometheus scrape of this process sees.

Run: ``python examples/quickstart.py`` (needs only ``pip install inference-metrics``).
"""

from __future__ import annotations

import http.client
import time

from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.server import MetricsServer, NoAuth


def main() -> str:
    registry = CollectorRegistry()  # or leave it out: prometheus_client's default REGISTRY
    recorder = Recorder(PrometheusBackend(registry))
    # /metrics rendered by this package's writer, in a thread of its own. Here on the loopback
    # interface, any free port, unauthenticated; TokenFileAuthenticator or KubernetesAuthenticator
    # guard it. (prometheus_client's start_http_server(9090, registry=registry) serves the same
    # registry too, more slowly.)
    server = MetricsServer(auth=NoAuth(), registry=registry, host="127.0.0.1", port=0)
    server.start()
    try:
        # One request for model "llama-3-8b", routed to the LoRA adapter "llama-3-8b-lora-a".
        received = time.monotonic()
        recorder.record_request_counter("llama-3-8b", "llama-3-8b-lora-a")
        recorder.record_request_size("llama-3-8b", "llama-3-8b-lora-a", 512)
        recorder.record_response_size("llama-3-8b", "llama-3-8b-lora-a", 2048)
        recorder.record_input_tokens("llama-3-8b", "llama-3-8b-lora-a", 42)
        recorder.record_output_tokens("llama-3-8b", "llama-3-8b-lora-a", 128)
        recorder.record_request_latency(
            "llama-3-8b", "llama-3-8b-lora-a", received, received + 1.25
        )
        # A failed one, and the inference pool's gauges.
        recorder.record_request_error("llama-3-8b", "llama-3-8b-lora-a", "ModelServerError")
        recorder.record_pool_kv_cache_utilization("vllm-llama3-8b-pool", 0.42)
        recorder.record_pool_queue_size("vllm-llama3-8b-pool", 3)

        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", "/metrics")
            return connection.getresponse().read().decode()
        finally:
            connection.close()
    finally:
        server.stop()


if __name__ == "__main__":
    print(main(), end="")

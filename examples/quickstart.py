"""Quickstart: record one request the way upstream's endpoint picker does, then print what a
Prometheus scrape of this process would see.

Run: ``python examples/quickstart.py`` (needs only ``pip install inference-metrics``).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from inference_metrics import PrometheusBackend, Recorder


def main() -> str:
    registry = CollectorRegistry()  # or leave it out: prometheus_client's default REGISTRY
    recorder = Recorder(PrometheusBackend(registry))

    # One request for model "llama-3-8b", routed to the LoRA adapter "llama-3-8b-lora-a".
    received = time.monotonic()
    recorder.record_request_counter("llama-3-8b", "llama-3-8b-lora-a")
    recorder.record_request_size("llama-3-8b", "llama-3-8b-lora-a", 512)
    recorder.record_response_size("llama-3-8b", "llama-3-8b-lora-a", 2048)
    recorder.record_input_tokens("llama-3-8b", "llama-3-8b-lora-a", 42)
    recorder.record_output_tokens("llama-3-8b", "llama-3-8b-lora-a", 128)
    recorder.record_request_latency("llama-3-8b", "llama-3-8b-lora-a", received, received + 1.25)
    # A failed one, and the inference pool's gauges.
    recorder.record_request_error("llama-3-8b", "llama-3-8b-lora-a", "ModelServerError")
    recorder.record_pool_kv_cache_utilization("vllm-llama3-8b-pool", 0.42)
    recorder.record_pool_queue_size("vllm-llama3-8b-pool", 3)

    return generate_latest(registry).decode()


if __name__ == "__main__":
    print(main(), end="")

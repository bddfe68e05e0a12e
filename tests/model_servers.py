"""Stand-in model servers for the pool monitor tests: each serves ``/metrics`` in one engine's
real shape (names, types, HELP, the label sets the engine emits, histograms around the gauges)
and an OpenAI-style ``/v1/completions`` that says which server answered.

A :class:`ModelServer` can also misbehave on ``/metrics`` (:attr:`ModelServer.fault`): hang,
answer 500, serve garbage, serve a 100 MB page, or declare the queue family with the wrong type.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

MODEL = "meta-llama/Llama-3.1-8B-Instruct"

# vLLM's bucket boundaries (vllm/v1/metrics), for a page of realistic size.
# fmt: off
_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
         10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0)
_E2E = (0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
        60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
# fmt: on
_TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


@dataclass
class Load:
    """What one engine (one data-parallel rank) reports."""

    queue: float = 0.0
    running: float = 0.0
    kv_cache: float = 0.0
    running_adapters: tuple[str, ...] = ()
    waiting_adapters: tuple[str, ...] = ()
    max_adapters: int | None = None


def _histogram(name: str, help_text: str, labels: str, bounds: Sequence[float]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    count = 0
    for i, bound in enumerate(bounds):
        count += i % 3
        lines.append(f'{name}_bucket{{{labels},le="{float(bound)}"}} {float(count)}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(count)}')
    lines.append(f"{name}_count{{{labels}}} {float(count)}")
    lines.append(f"{name}_sum{{{labels}}} {count * 0.37}")
    return lines


def _process_metrics() -> list[str]:
    return [
        "# HELP python_gc_objects_collected_total Objects collected during gc",
        "# TYPE python_gc_objects_collected_total counter",
        'python_gc_objects_collected_total{generation="0"} 18230.0',
        'python_gc_objects_collected_total{generation="1"} 2650.0',
        'python_gc_objects_collected_total{generation="2"} 412.0',
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 2.4563712e+09",
    ]


def vllm_page(
    engines: Sequence[Load],
    *,
    model: str = MODEL,
    deprecated_kv: bool = False,
    cache_info: bool = True,
    queue_type: str = "gauge",
    wrong_types: bool = False,
) -> str:
    """A vLLM V1 page: every metric per data-parallel engine (``engine`` label).
    ``queue_type``: the queue family's declared type; ``wrong_types``: the running and KV
    families are declared with it too."""
    lines = _process_metrics()

    def gauge(name: str, help_text: str, values: Sequence[float], kind: str = "gauge") -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        for rank, value in enumerate(values):
            lines.append(f'{name}{{engine="{rank}",model_name="{model}"}} {float(value)}')

    gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        [e.running for e in engines],
        queue_type if wrong_types else "gauge",
    )
    gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        [e.queue for e in engines],
        queue_type,
    )
    kv_name = "vllm:gpu_cache_usage_perc" if deprecated_kv else "vllm:kv_cache_usage_perc"
    gauge(
        kv_name,
        "KV-cache usage. 1 means 100 percent usage.",
        [e.kv_cache for e in engines],
        queue_type if wrong_types else "gauge",
    )
    adapters = [e for e in engines if e.max_adapters is not None]
    if adapters:
        lines.append("# HELP vllm:lora_requests_info Running stats on lora requests.")
        lines.append("# TYPE vllm:lora_requests_info gauge")
        for rank, e in enumerate(adapters):
            lines.append(
                f'vllm:lora_requests_info{{max_lora="{e.max_adapters}",'
                f'running_lora_adapters="{",".join(e.running_adapters)}",'
                f'waiting_lora_adapters="{",".join(e.waiting_adapters)}"}} {1.7e9 + rank}'
            )
    if cache_info:
        lines.append("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig")
        lines.append("# TYPE vllm:cache_config_info gauge")
        for rank in range(len(engines)):
            lines.append(
                f'vllm:cache_config_info{{block_size="16",cache_dtype="auto",engine="{rank}",'
                f'gpu_memory_utilization="0.9",num_cpu_blocks="None",num_gpu_blocks="27823",'
                f'prefix_caching_hash_algo="builtin",swap_space="4"}} 1.0'
            )
    for rank in range(len(engines)):
        labels = f'engine="{rank}",model_name="{model}"'
        for name, help_text, bounds in (
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token.", _TTFT),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency.", _ITL),
            ("vllm:request_time_per_output_token_seconds", "Time per output token.", _ITL),
            ("vllm:e2e_request_latency_seconds", "e2e request latency.", _E2E),
            ("vllm:request_queue_time_seconds", "Time spent in WAITING phase.", _E2E),
            ("vllm:request_inference_time_seconds", "Time spent in RUNNING phase.", _E2E),
            ("vllm:request_prefill_time_seconds", "Time spent in PREFILL phase.", _E2E),
            ("vllm:request_decode_time_seconds", "Time spent in DECODE phase.", _E2E),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", _TOKENS),
            ("vllm:request_generation_tokens", "Number of generation tokens.", _TOKENS),
            ("vllm:request_params_max_tokens", "The max_tokens request parameter.", _TOKENS),
        ):
            lines.extend(_histogram(name, help_text, labels, bounds))
        for name in ("vllm:prompt_tokens", "vllm:generation_tokens", "vllm:num_preemptions"):
            lines.append(f"# TYPE {name}_total counter")
            lines.append(f"{name}_total{{{labels}}} 1234.0")
        for reason in ("stop", "length", "abort", "error", "repetition"):
            lines.append(
                f'vllm:request_success_total{{engine="{rank}",finished_reason="{reason}",'
                f'model_name="{model}"}} 17.0'
            )
    return "\n".join(lines) + "\n"


def sglang_page(engines: Sequence[Load], *, model: str = MODEL) -> str:
    lines = _process_metrics()
    for name, help_text, attribute in (
        ("sglang:num_running_reqs", "The number of running requests.", "running"),
        ("sglang:num_queue_reqs", "The number of requests in the waiting queue.", "queue"),
        ("sglang:token_usage", "The token usage.", "kv_cache"),
    ):
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge"])
        for rank, e in enumerate(engines):
            lines.append(
                f'{name}{{dp_rank="{rank}",engine_type="unified",model_name="{model}",'
                f'pp_rank="0",tp_rank="0"}} {float(getattr(e, attribute))}'
            )
    lines.append("# TYPE sglang:cache_config_info gauge")
    lines.append('sglang:cache_config_info{num_pages="4096",page_size="64"} 1.0')
    lines.extend(_histogram("sglang:time_to_first_token_seconds", "TTFT.", 'model_name="m"', _TTFT))
    return "\n".join(lines) + "\n"


def trtllm_serve_page(engines: Sequence[Load], *, model: str = MODEL) -> str:
    lines = _process_metrics()
    for name, attribute in (
        ("trtllm_num_requests_waiting", "queue"),
        ("trtllm_num_requests_running", "running"),
        ("trtllm_kv_cache_utilization", "kv_cache"),
    ):
        lines.extend([f"# HELP {name} {name}", f"# TYPE {name} gauge"])
        for e in engines:
            lines.append(
                f'{name}{{engine_type="pytorch",model_name="{model}"}} '
                + str(float(getattr(e, attribute)))
            )
    lines += ["# TYPE trtllm_kv_cache_tokens_per_block gauge"]
    lines += [f'trtllm_kv_cache_tokens_per_block{{model_name="{model}"}} 32.0']
    lines += ["# TYPE trtllm_kv_cache_max_blocks gauge"]
    lines += [f'trtllm_kv_cache_max_blocks{{model_name="{model}"}} 9000.0']
    return "\n".join(lines) + "\n"


def triton_trtllm_page(engines: Sequence[Load]) -> str:
    e = engines[0]
    lines = [
        "# HELP nv_trt_llm_request_metrics TRT LLM request metrics",
        "# TYPE nv_trt_llm_request_metrics gauge",
    ]
    for kind, value in (
        ("context", 1.0),
        ("scheduled", e.running),
        ("max", 64.0),
        ("active", e.running + e.queue),
        ("waiting", e.queue),
    ):
        lines.append(
            f'nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="{kind}",'
            f'version="1"}} {float(value)}'
        )
    lines += [
        "# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics",
        "# TYPE nv_trt_llm_kv_cache_block_metrics gauge",
    ]
    for kind, value in (
        ("max", 9000.0),
        ("free", 9000.0 * (1 - e.kv_cache)),
        ("used", 9000.0 * e.kv_cache),
        ("tokens_per", 64.0),
        ("fraction", e.kv_cache),
    ):
        lines.append(
            f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="{kind}",'
            f'model="tensorrt_llm",version="1"}} {float(value)}'
        )
    return "\n".join(lines) + "\n"


def triton_page(engines: Sequence[Load]) -> str:
    e = engines[0]
    return (
        "\n".join(
            [
                "# HELP nv_inference_pending_request_count Instantaneous number of pending "
                "requests awaiting execution per-model.",
                "# TYPE nv_inference_pending_request_count gauge",
                f'nv_inference_pending_request_count{{model="resnet50",version="1"}} {e.queue!r}',
                "# HELP nv_inference_exec_count Number of model executions performed",
                "# TYPE nv_inference_exec_count counter",
                f'nv_inference_exec_count{{model="resnet50",version="1"}} {float(e.running)}',
            ]
        )
        + "\n"
    )


PAGES = {
    "vllm": vllm_page,
    "sglang": sglang_page,
    "trtllm-serve": trtllm_serve_page,
    "triton-trtllm": triton_trtllm_page,
    "triton": triton_page,
}


@dataclass
class ModelServer:
    """One stand-in model server; ``engines`` is its data-parallel ranks' loads.

    ``fault``: None (healthy), ``"hang"``, ``"500"``, ``"garbage"``, ``"huge"`` (100 MB),
    ``"wrong-type"`` (the queue, running and KV families declared histograms).
    """

    name: str
    engine: str = "vllm"
    engines: list[Load] = field(default_factory=lambda: [Load()])
    fault: str | None = None
    deprecated_kv: bool = False
    port: int = 0
    scrapes: int = 0
    served: int = 0
    _runner: web.AppRunner | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def page(self) -> str:
        if self.engine == "vllm":
            queue_type = "histogram" if self.fault == "wrong-type" else "gauge"
            return vllm_page(
                self.engines,
                deprecated_kv=self.deprecated_kv,
                queue_type=queue_type,
                wrong_types=queue_type != "gauge",
            )
        return PAGES[self.engine](self.engines)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.scrapes += 1
        if self.fault == "hang":
            await asyncio.sleep(3600)
        if self.fault == "500":
            return web.Response(status=500, text="engine dead")
        if self.fault == "garbage":
            return web.Response(body=os.urandom(50_000), content_type="text/plain")
        if self.fault == "huge":
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            line = b'vllm:num_requests_waiting{engine="0",model_name="x"} 1.0\n' * 18_000
            for _ in range(100):  # 100 chunks of ~1 MB, never held at once
                await response.write(line)
            await response.write_eof()
            return response
        return web.Response(
            text=self.page(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Engine": self.engine},
        )

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.served += 1
        reply = {
            "id": f"cmpl-{self.served}",
            "object": "text_completion",
            "model": body.get("model", MODEL),
            "choices": [{"index": 0, "text": f"served by {self.name}", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        }
        return web.json_response(reply, headers={"X-Served-By": self.name})

    async def start(self, host: str = "127.0.0.1") -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/completions", self._completions)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Startable(Protocol):
    async def start(self) -> object: ...
    async def stop(self) -> None: ...


class ServersThread:
    """Servers (model servers, the Kubernetes API stand-in) served from an event loop in a
    daemon thread, for tests that drive subprocesses; :meth:`call` runs code in that loop."""

    def __init__(self, servers: Sequence[Startable]) -> None:
        self.servers = list(servers)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="model-servers")
        self._thread.daemon = True

    def __enter__(self) -> ServersThread:
        self._thread.start()

        async def start_all() -> None:
            for server in self.servers:
                await server.start()

        asyncio.run_coroutine_threadsafe(start_all(), self._loop).result(10)
        return self

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in the servers' loop and wait for it."""

        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def __exit__(self, *exc_info: object) -> None:
        async def stop_all() -> None:
            for server in self.servers:
                await server.stop()

        try:
            asyncio.run_coroutine_threadsafe(stop_all(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()


async def wait_until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll ``check`` every 10 ms until it is true; TimeoutError after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)

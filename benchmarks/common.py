"""What the benchmarks share: the request they time, and best-of-N per-call cost in seconds."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inference_metrics import Recorder

# One whole request: the same values on every side of every comparison.
MODEL, TARGET = "llama-3-8b", "llama-3-8b-lora-a"
RECEIVED, COMPLETED = 1000.0, 1001.25
REQUEST_SIZE, RESPONSE_SIZE, INPUT_TOKENS, OUTPUT_TOKENS = 1200, 2480, 30, 300


def recorder_request(recorder: Recorder) -> Callable[[], None]:
    """One whole request as the six parity calls on ``recorder``."""

    def request() -> None:
        recorder.record_request_counter(MODEL, TARGET)
        recorder.record_request_size(MODEL, TARGET, REQUEST_SIZE)
        recorder.record_request_latency(MODEL, TARGET, RECEIVED, COMPLETED)
        recorder.record_response_size(MODEL, TARGET, RESPONSE_SIZE)
        recorder.record_input_tokens(MODEL, TARGET, INPUT_TOKENS)
        recorder.record_output_tokens(MODEL, TARGET, OUTPUT_TOKENS)

    return request


def per_call(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """The best (lowest) mean seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls.

    The best run is the one least disturbed by the rest of the machine; ratios of two such
    figures taken in the same run travel between machines, absolute times do not.
    """
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample ``registry`` exposes (``*_created`` aside), parsed back from the text."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def same_data(ours: CollectorRegistry, hand: CollectorRegistry) -> int:
    """Both expose the same samples (``*_created`` aside), so a comparison of their scrapes
    compares like with like; returns how many samples. AssertionError if not."""
    ours_samples = samples(ours)
    if ours_samples != samples(hand):
        raise AssertionError("the two registries do not hold the same data")
    return len(ours_samples)


def best_per_call(
    cases: Mapping[str, Callable[[], object]], *, rounds: int, number: int, repeat: int = 3
) -> dict[str, float]:
    """:func:`per_call` of every case, interleaved over ``rounds``; each case keeps its best."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], per_call(fn, number=number, repeat=repeat))
    return best


def print_per_request(title: str, best: Mapping[str, float], base: str) -> None:
    """``best`` (seconds per request) as a Markdown table, with ratios against ``best[base]``."""
    print(title)
    print("| one whole request | per request | x `labels()` |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds * 1e6:.1f} µs | {seconds / best[base]:.2f} |")

"""The cost of folding observations into a native histogram, against the classic fold.

The store's record path is the same for both kinds: ``observe`` appends the value to the series'
pending list. What differs is the fold, which runs every 256 values (``FOLD_AT``) or at a scrape:

* **classic**: the store's ``HistogramSeries`` fold (sum, then a bisection per value for a small
  batch, or one sort and a bisection per bound for a larger one) into upstream's buckets;
* **native**: ``NativeHistogram.observe`` (sum, ``bucket_counts``: a key per value for a small
  batch, or one sort and a walk bucket by bucket for a larger one, then the bucket bound);
* for context, prometheus_client's ``Histogram.observe`` per value (a lock and a bucket search
  per call, the cost an application pays on its record path).

Three kinds of values: request latency (log-normal around 0.8 s, the seconds buckets), output
tokens (integers, log-normal around 200, the token buckets), and values spread over twelve
decades (log-uniform 1e-6 to 1e6, the seconds buckets; the native histogram halves its
resolution to stay within 160 buckets). Each batch size is timed as the best of ``--repeat`` runs
of ``--number`` batches; figures are per observation.

Run: ``.venv/bin/python -m benchmarks.bench_native`` (``--number N``, ``--repeat R``).
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram

from inference_metrics import CATALOG
from inference_metrics.backends.native import NativeHistogram, bucket_counts
from inference_metrics.backends.store import FOLD_AT, HistogramSeries, Labels

from .common import per_call

BATCHES = (FOLD_AT, 64, 8)


def values(kind: str, count: int, rng: random.Random) -> list[float]:
    if kind == "latency":
        return [rng.lognormvariate(math.log(0.8), 1.0) for _ in range(count)]
    if kind == "output tokens":
        return [float(max(1, round(rng.lognormvariate(math.log(200), 1.0)))) for _ in range(count)]
    return [10 ** rng.uniform(-6, 6) for _ in range(count)]


def bounds(kind: str) -> tuple[float, ...]:
    name = (
        "inference_model_output_tokens"
        if kind == "output tokens"
        else "inference_model_request_duration_seconds"
    )
    buckets = CATALOG[name].buckets
    assert buckets is not None
    return buckets


def cases(kind: str, size: int, rng: random.Random) -> dict[str, Callable[[], None]]:
    """One fold of a fresh batch of ``size`` values, each way (batches drawn ahead, cycled)."""
    batches = [values(kind, size, rng) for _ in range(64)]
    series = HistogramSeries(Labels("", "", ""), bounds(kind))
    native = NativeHistogram()
    hand = Histogram("h", "h", buckets=bounds(kind), registry=CollectorRegistry())
    turn = iter(range(1 << 62))

    def classic_fold() -> None:
        series.pending.extend(batches[next(turn) & 63])
        series._fold()

    def native_fold() -> None:
        native.observe(batches[next(turn) & 63])

    def hand_written() -> None:
        observe = hand.observe
        for value in batches[next(turn) & 63]:
            observe(value)

    return {
        "classic fold (store)": classic_fold,
        "native fold (`NativeHistogram.observe`)": native_fold,
        "prometheus_client `Histogram.observe` per value": hand_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="batches per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best kept)")
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"## fold cost per observation (best of {args.repeat} x {args.number} batches)")
    print(
        "| values | batch | classic fold | native fold | native / classic | buckets a batch "
        "touches (native) | prometheus_client `observe` |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("latency", "output tokens", "spread over 12 decades"):
        for size in BATCHES:
            timings = {
                name: per_call(fn, number=args.number, repeat=args.repeat) / size * 1e9
                for name, fn in cases(kind, size, rng).items()
            }
            classic, native, hand = timings.values()
            sample = bucket_counts(values(kind, size, rng))
            touched = len(sample.positive) + len(sample.negative) + bool(sample.zero)
            print(
                f"| {kind} | {size} | {classic:.0f} ns | {native:.0f} ns | "
                f"**{native / classic:.2f}** | {touched} | {hand:.0f} ns |"
            )


if __name__ == "__main__":
    main()

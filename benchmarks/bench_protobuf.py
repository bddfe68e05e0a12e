"""The protobuf page against the text page: bytes and the time to make them, at 1000 pairs.

The data is ``bench_exposition``'s (every catalogue metric holding data for ``--pairs`` (model,
target) pairs), with every histogram's observations also counted in a native histogram of its
own (schema 3). Four pages of the same numbers:

* **text**: our writer (``render(registry, TEXT)``), every series' lines made afresh (the cached
  lines dropped before each timed run, untimed), and the hand-written ``generate_latest`` of the
  same data in prometheus_client metrics: the baseline of the time ratios;
* **protobuf, classic / native / both**: every series encoded afresh from its numbers with
  ``inference_metrics.backends.protobuf`` (labels and family headers encoded once ahead, as a
  store would at bind): classic buckets only, native buckets only, or both in one message.

Bytes are the page's, and gzip'd at level 6 (what a scrape with ``Accept-Encoding: gzip``
would carry). The issue's goal for the native page: at most 0.15x the text page's bytes. The
encode is the cold case (every series changed); the integration caches a series' bytes as it
caches its text lines.

Run: ``.venv/bin/python -m benchmarks.bench_protobuf`` (``--pairs N``, ``--repeat R``).
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Callable

import prometheus_client
from prometheus_client import generate_latest

from inference_metrics import Kind
from inference_metrics.backends.native import NativeHistogram
from inference_metrics.backends.protobuf import (
    HistogramEncoder,
    MetricType,
    counter,
    family,
    family_header,
    gauge,
    label_pairs,
)
from inference_metrics.backends.store import CounterSeries, GaugeSeries, HistogramSeries
from inference_metrics.exposition import TEXT, render

from .bench_exposition import SPECS, World, label_sets, timed

_TYPES = {Kind.COUNTER: MetricType.COUNTER, Kind.GAUGE: MetricType.GAUGE}

Row = tuple[bytes, object, NativeHistogram | None]


def plan(world: World) -> list[tuple[bytes, HistogramEncoder, list[Row]]]:
    """Per metric: its family header, histogram encoder and (labels, series, native) rows,
    in the order ``World`` bound them."""
    rows = iter(zip(world.series, world.natives, strict=True))
    metrics = []
    for spec in SPECS:
        header = family_header(
            spec.name, spec.documentation, _TYPES.get(spec.kind, MetricType.HISTOGRAM)
        )
        encoder = HistogramEncoder(spec.buckets or ())
        series: list[Row] = []
        for values in label_sets(spec, world.pairs):
            (kind, stored, _, _), native = next(rows)
            assert kind is spec.kind
            series.append(
                (label_pairs(sorted(zip(spec.labels, values, strict=True))), stored, native)
            )
        metrics.append((header, encoder, series))
    assert next(rows, None) is None
    return metrics


def encoder_of(
    metrics: list[tuple[bytes, HistogramEncoder, list[Row]]], mode: str
) -> Callable[[], bytes]:
    classic, native_on = mode in ("classic", "both"), mode in ("native", "both")

    def encode() -> bytes:
        out = []
        for header, encoder, rows in metrics:
            entries = []
            for labels, stored, native in rows:
                if isinstance(stored, CounterSeries):
                    value = stored.snapshot()
                    if value is not None:
                        entries.append(counter(labels, value))
                elif isinstance(stored, GaugeSeries):
                    value = stored.snapshot()
                    if value is not None:
                        entries.append(gauge(labels, value))
                else:
                    assert isinstance(stored, HistogramSeries)
                    numbers = stored.snapshot()
                    if numbers is None:
                        continue
                    entries.append(
                        encoder.metric(
                            labels,
                            numbers.count,
                            numbers.sum,
                            counts=numbers.counts if classic else None,
                            native=native if native_on else None,
                        )
                    )
            out.append(family(header, entries))
        return b"".join(out)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    args = parser.parse_args()
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        world = World(args.pairs, native=True)
        metrics = plan(world)

        def forget_lines() -> None:
            for _, stored, _, _ in world.series:
                assert isinstance(stored, CounterSeries | GaugeSeries | HistogramSeries)
                stored.rendered = None

        hand_s, hand_body = timed(lambda: generate_latest(world.hand), lambda: None, args.repeat)
        rows = [("hand-written `generate_latest` (text)", hand_s, hand_body)]
        text_s, text_body = timed(lambda: render(world.ours, TEXT), forget_lines, args.repeat)
        rows.append(("ours, text (every series formatted)", text_s, text_body))
        for mode in ("classic", "native", "both"):
            seconds, body = timed(encoder_of(metrics, mode), lambda: None, args.repeat)
            rows.append((f"ours, protobuf, {mode}", seconds, body))
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
    text_bytes = len(text_body)
    print(f"## one page at {args.pairs} pairs, every series made afresh (best of {args.repeat})")
    print("| page | bytes | / our text page | gzip'd (level 6) | time | / hand-written text |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds, body in rows:
        print(
            f"| {name} | {len(body):,} B | **{len(body) / text_bytes:.3f}** | "
            f"{len(gzip.compress(body, 6)):,} B | {seconds * 1e3:.1f} ms | "
            f"**{seconds / hand_s:.3f}** |"
        )


if __name__ == "__main__":
    main()

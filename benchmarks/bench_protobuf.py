"""The protobuf page against the text page, through the real render path: bytes and time.

The data is ``bench_exposition``'s (upstream's 18 metrics holding data for ``--pairs`` (model,
target) pairs), recorded three times: by ``PrometheusBackend(histograms=...)`` with ``classic``,
``native`` and ``both``, each beside the same data in hand-written prometheus_client metrics.
Before each timed scrape every series gets one more update, untimed (``World.touch``), so no
cached bytes can be reused: the worst case, as in ``bench_exposition``. Rows:

* **hand-written** ``generate_latest`` of the classic world (text): the baseline of the times;
  gzip'd: that plus ``gzip.compress(body, 6)``, each timed on its own;
* **ours, text**: ``render(registry, TEXT)`` (what ``MetricsServer`` sends for text 0.0.4) of the
  classic world: the baseline of the bytes; and of the native world (a native-only histogram
  shows ``+Inf``, ``_count`` and ``_sum``);
* **ours, protobuf**, classic / native / both: ``render(registry, PROTOBUF)``, the page a
  Prometheus with native histograms on gets, every series encoded afresh;
* each also **as served gzip'd**: ``GzipCache.render`` (level 6, 64 KiB chunks, the fastest
  deflate installed), as ``MetricsServer`` answers ``Accept-Encoding: gzip``;
* the **idle re-scrape** of each protobuf page: nothing recorded since (every series' bytes
  reused).

The issue's goal: the native protobuf page at most 0.15x the classic text page's bytes.

Run: ``.venv/bin/python -m benchmarks.bench_protobuf`` (``--pairs N``, ``--repeat R``).
"""

from __future__ import annotations

import argparse
import gzip

import prometheus_client
from prometheus_client import generate_latest

from inference_metrics.exposition import PROTOBUF, TEXT, Representation, render
from inference_metrics.gzip_cache import GzipCache
from inference_metrics.server.scrape import GZIP_LEVEL

from .bench_exposition import World, gzip_time, timed
from .common import same_data

KINDS = ("classic", "native", "both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    args = parser.parse_args()
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        worlds = {kind: World(args.pairs, histograms=kind) for kind in KINDS}
        classic = worlds["classic"]
        same_data(classic.ours, classic.hand)
        hand_s, hand_body = timed(lambda: generate_latest(classic.hand), classic.touch, args.repeat)
        hand_gz_s, hand_gz_bytes = gzip_time(hand_body, args.repeat)
        hand_served = hand_s + hand_gz_s  # render, then gzip.compress, each timed on its own
        rows = [
            ("hand-written `generate_latest`, text", hand_s, hand_body, hand_served, hand_gz_bytes)
        ]
        cases: list[tuple[str, str, Representation]] = [
            ("ours, text, classic", "classic", TEXT),
            ("ours, text, native", "native", TEXT),
            *((f"ours, protobuf, {kind}", kind, PROTOBUF) for kind in KINDS),
        ]
        idle: list[tuple[str, float, float]] = []
        for name, kind, representation in cases:
            world = worlds[kind]

            def page(
                world: World = world, representation: Representation = representation
            ) -> bytes:
                return render(world.ours, representation)

            seconds, body = timed(page, world.touch, args.repeat)
            cache = GzipCache(GZIP_LEVEL)

            def served(
                world: World = world,
                representation: Representation = representation,
                cache: GzipCache = cache,
            ) -> bytes:
                return cache.render(world.ours, representation)

            gz_s, gz_body = timed(served, world.touch, args.repeat)
            assert gzip.decompress(gz_body) == page(), "the gzip'd body is not the render"
            rows.append((name, seconds, body, gz_s, len(gz_body)))
            if representation is PROTOBUF:
                idle_s, _ = timed(page, lambda: None, args.repeat)
                idle.append((name, seconds, idle_s))
        deflate = GzipCache(GZIP_LEVEL).deflate
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
    text_bytes = len(rows[1][2])
    text_gz = rows[1][4]
    print(
        f"## one page at {args.pairs} pairs after a change to every series (best of "
        f"{args.repeat}; gzip: level {GZIP_LEVEL}, {deflate})"
    )
    print(
        "| page | bytes | / classic text page | render | / hand-written | gzip'd as served | "
        "/ classic text gzip'd | time | / hand-written + gzip |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, seconds, body, gz_s, gz_bytes in rows:
        print(
            f"| {name} | {len(body):,} B | **{len(body) / text_bytes:.3f}** | "
            f"{seconds * 1e3:.1f} ms | {seconds / hand_s:.3f} | {gz_bytes:,} B | "
            f"{gz_bytes / text_gz:.3f} | {gz_s * 1e3:.1f} ms | "
            f"**{gz_s / hand_served:.3f}** |"
        )
    print()
    print("## idle re-scrape of the protobuf page (nothing recorded since)")
    print("| page | after a change to every series | idle | idle / changed |")
    print("|---|---:|---:|---:|")
    for name, changed_s, idle_s in idle:
        ratio = idle_s / changed_s
        print(f"| {name} | {changed_s * 1e3:.1f} ms | {idle_s * 1e3:.2f} ms | {ratio:.3f} |")


if __name__ == "__main__":
    main()

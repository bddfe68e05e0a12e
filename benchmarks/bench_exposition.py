"""The body ``MetricsServer`` sends for one scrape, against hand-written prometheus_client code.

For 10, 100 and 1000 (model, target) pairs with **every catalogue metric** holding data (the model
metrics for every pair, errors for every tenth pair, running requests per model, 4 pools with 8
pods each, build info), three cases:

* **scrape as served, after a change to every series**: ``render(registry, representation)`` (our
  writer), and, as the server sends it with ``Accept-Encoding: gzip``, ``GzipCache.render``, as
  the server's :class:`~inference_metrics.gzip_cache.GzipCache` (level 6, 64 KiB chunks), in the
  text format and in OpenMetrics; against ``generate_latest`` / the OpenMetrics
  ``generate_latest`` of a registry of hand-written ``Counter``/``Gauge``/``Histogram`` objects
  holding the same data (``*_created`` switched off, the cheaper setting), then
  ``gzip.compress(body, 6)`` (the same level). Before each timed scrape every series of both
  registries gets one more update, untimed, so nothing of ours can be reused from the scrape
  before: this is our worst case.
* **idle re-scrape**: ``render`` again with nothing recorded since the last one, against the first.
* **gzip'd scrape by what changed since the last one** (the largest pair count only, text): no
  series, 1 % or 10 % of each metric's series (the first ones: traffic on some models; or every
  tenth: traffic spread thin), every series; ours as served against the hand-written scrape as
  above (which costs the same whatever changed), and the body's size against
  ``gzip.compress(render(...), 6)``. Then the alternatives, every series changed: the whole page
  through ``gzip.compress`` at levels 6 and 1, the cache at level 1 and with 256 KiB chunks, and
  the cache with each other deflate installed (``isal``, ``zlib-ng``, the standard ``zlib``).
* The cache compresses with ``--deflate`` (default ``auto``: the fastest installed, as the server
  does); the script prints which one it used.
* **deflate alone**: the largest pair count's text page cut in 64 KiB pieces, each compressed on
  its own as raw deflate with a full flush (what the cache does to a new chunk), by each deflate
  installed at a few levels, and the CRC-32 of every piece.
* The data is checked first: both registries must expose the same samples.

Times are the best of ``--repeat`` runs with the garbage collector off while timing (as
``benchmarks/common.per_call``); a hand-written gzip'd time is the render's plus the compression's,
each timed on its own; ours as served is timed as one call (render and compression together).
Body sizes are the bytes sent. Run: ``.venv/bin/python -m benchmarks.bench_exposition``
(``--pairs 10,100,1000``, ``--repeat N``, ``--deflate auto|isal|zlib-ng|zlib``).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from inference_metrics import SEED_METRICS, Kind, MetricSpec, PrometheusBackend
from inference_metrics.backends import Series
from inference_metrics.catalog import LATER_METRICS
from inference_metrics.exposition import TEXT, Representation, negotiate, render
from inference_metrics.gzip_cache import DEFLATES, GzipCache, available_deflates
from inference_metrics.server.scrape import GZIP_LEVEL

from .common import same_data

OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")
#: The metrics every page holds: upstream's 18 of the default schema. This library's own counters
#: (parse failures, the pool monitor's errors) hold a few series each and are left out, so the
#: page is the one the figures in docs/performance.md were taken on.
SPECS: tuple[MetricSpec, ...] = SEED_METRICS + LATER_METRICS


def label_sets(spec: MetricSpec, pairs: int) -> list[tuple[str, ...]]:
    """The label sets a gateway serving ``pairs`` (model, target) pairs would have for ``spec``."""
    models: list[tuple[str, ...]] = [
        (f"model-{i // 4}", f"model-{i // 4}-lora-{i % 4}") for i in range(pairs)
    ]
    labels = spec.labels
    if labels == ("model_name", "target_model_name"):
        return models
    if labels == ("model_name", "target_model_name", "error_code"):
        return [(*pair, "ModelServerError") for pair in models[::10]]
    if labels == ("model_name",):
        return sorted({(pair[0],) for pair in models})
    if labels == ("name",):
        return [(f"pool-{p}",) for p in range(4)]
    if labels == ("name", "model_server_pod"):
        return [(f"pool-{p}", f"pod-{q}") for p in range(4) for q in range(8)]
    return [("0123abc", "v1.0.0")]


class World:
    """The same series in our store and in hand-written prometheus_client metrics; our
    histograms kept as ``histograms`` says (``PrometheusBackend(histograms=...)``)."""

    def __init__(self, pairs: int, seed: int = 1, histograms: str = "classic") -> None:
        self.pairs = pairs
        #: The hand-written scrape's seconds as served gzip'd, by representation (once measured).
        self.hand_served: dict[Representation, float] = {}
        self.rng = random.Random(seed)
        self.ours, self.hand = CollectorRegistry(), CollectorRegistry()
        instruments = PrometheusBackend(self.ours, histograms=histograms).register(SPECS)
        self.series: list[tuple[Kind, Series, Callable[[float], None], float]] = []
        #: Of each series in ``series``: its position among its metric's series, and how many.
        self.places: list[tuple[int, int]] = []
        for instrument in instruments:
            spec = instrument.spec
            theirs = _hand_written(spec, self.hand)
            top = spec.buckets[-1] if spec.buckets else 100.0
            sets = label_sets(spec, pairs)
            for place, values in enumerate(sets):
                self.places.append((place, len(sets)))
                child = theirs.labels(*values)
                update: Callable[[float], None]
                if spec.kind is Kind.COUNTER:
                    update = child.inc  # type: ignore[union-attr]
                elif spec.kind is Kind.GAUGE:
                    update = child.set  # type: ignore[union-attr]
                else:
                    update = child.observe  # type: ignore[union-attr]
                self.series.append((spec.kind, instrument.bind(values), update, top))
        for _ in range(3):
            self.touch()

    def touch(self, share: float = 1.0, spread: bool = False) -> None:
        """One more update of ``share`` of each metric's series (the first ones, or, ``spread``,
        evenly spaced ones), the same in both registries."""
        rng = self.rng
        step = round(1 / share) if share else 0
        for (kind, ours, theirs, top), (place, count) in zip(self.series, self.places, strict=True):
            if not share or (place % step if spread else place >= count * share):
                continue
            if kind is Kind.COUNTER:
                ours.add(1)
                theirs(1)
            elif kind is Kind.GAUGE:
                value = float(rng.randint(0, 50))
                ours.set(value)
                theirs(value)
            else:
                value = rng.uniform(0, top * 1.2)
                ours.observe(value)
                theirs(value)


def _hand_written(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    labels = list(spec.labels)
    if spec.kind is Kind.COUNTER:
        return Counter(spec.name, spec.documentation, labels, registry=registry)
    if spec.kind is Kind.GAUGE:
        return Gauge(spec.name, spec.documentation, labels, registry=registry)
    assert spec.buckets is not None
    return Histogram(spec.name, spec.documentation, labels, buckets=spec.buckets, registry=registry)


def timed(fn: Callable[[], bytes], before: Callable[[], None], repeat: int) -> tuple[float, bytes]:
    """Best seconds of ``fn`` over ``repeat`` runs, ``before`` run untimed ahead of each."""
    best, body = float("inf"), b""
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(repeat):
            before()
            gc.disable()
            start = time.perf_counter()
            body = fn()
            best = min(best, time.perf_counter() - start)
            if gc_was_enabled:
                gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()
    return best, body


def gzip_time(body: bytes, repeat: int, level: int = GZIP_LEVEL) -> tuple[float, int]:
    seconds, compressed = timed(lambda: gzip.compress(body, level), lambda: None, repeat)
    return seconds, len(compressed)


def served_gzip(
    world: World, representation: Representation, cache: GzipCache
) -> Callable[[], bytes]:
    """Ours as the server sends it gzip'd (``Renderer`` calls ``GzipCache.render``)."""

    def scrape() -> bytes:
        return cache.render(world.ours, representation)

    return scrape


def hand_encoder(representation: Representation) -> Callable[[CollectorRegistry], bytes]:
    if representation.openmetrics:
        encoder: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
        return encoder
    return generate_latest


def measure(
    world: World,
    samples: int,
    name: str,
    representation: Representation,
    repeat: int,
    deflate: str,
) -> tuple[list[str], str]:
    """The two "as served" rows (gzip off, on) and the idle row of one format."""
    pairs = world.pairs
    encode = hand_encoder(representation)

    def ours() -> bytes:
        return render(world.ours, representation)

    def hand() -> bytes:
        return encode(world.hand)

    def scraped() -> None:
        ours()

    ours_s, ours_body = timed(ours, world.touch, repeat)
    hand_s, hand_body = timed(hand, world.touch, max(1, repeat - 1))
    hand_gz, hand_gz_len = gzip_time(hand_body, max(1, repeat - 1))
    hand_served = hand_s + hand_gz
    world.hand_served[representation] = hand_served
    scrape = served_gzip(world, representation, GzipCache(GZIP_LEVEL, deflate=deflate))
    ours_gz, ours_gz_body = timed(scrape, world.touch, repeat)
    assert gzip.decompress(ours_gz_body) == ours(), "the gzip'd body is not the render"
    served = [
        f"| {pairs} | {name} | off | {len(ours_body):,} B ({samples:,} samples) | "
        f"{ours_s * 1e3:.1f} ms | {hand_s * 1e3:.1f} ms | **{ours_s / hand_s:.3f}** |",
        f"| {pairs} | {name} | on | {len(ours_gz_body):,} B gzip'd "
        f"(hand-written: {hand_gz_len:,} B) | "
        f"{ours_gz * 1e3:.1f} ms | {hand_served * 1e3:.1f} ms | **{ours_gz / hand_served:.3f}** |",
    ]
    changed_s, _ = timed(ours, world.touch, repeat)
    idle_s, _ = timed(ours, scraped, repeat)
    idle = (
        f"| {pairs} | {name} | {changed_s * 1e3:.1f} ms | {idle_s * 1e3:.2f} ms | "
        f"{idle_s / changed_s:.3f} |"
    )
    return served, idle


CHANGES = (
    ("nothing (idle)", 0.0, False),
    ("1 % of series (the first)", 0.01, False),
    ("1 % of series (every 100th)", 0.01, True),
    ("10 % of series (the first)", 0.1, False),
    ("10 % of series (every tenth)", 0.1, True),
    ("every series", 1.0, False),
)


def by_change(world: World, repeat: int, deflate: str) -> list[str]:
    """The gzip'd scrape (text) by what changed since the last one, then the alternatives."""
    hand_served = world.hand_served[TEXT]
    rows = []

    def row(changed: str, how: str, seconds: float, body: bytes) -> None:
        page = render(world.ours, TEXT)
        assert gzip.decompress(body) == page, "the gzip'd body is not the render"
        whole = len(gzip.compress(page, GZIP_LEVEL))
        rows.append(
            f"| {changed} | {how} | {seconds * 1e3:.1f} ms | **{seconds / hand_served:.3f}** | "
            f"{len(body):,} B | {len(body) / whole:.3f} |"
        )

    others = [name for name in available_deflates() if name != deflate]
    cases = [(GZIP_LEVEL, 64, deflate), (GZIP_LEVEL, 256, deflate), (1, 64, deflate)]
    cases += [(GZIP_LEVEL, 64, name) for name in others]
    for level, chunk, name in cases:
        cache = GzipCache(level, chunk * 1024, deflate=name)
        scrape = served_gzip(world, TEXT, cache)
        every = level != GZIP_LEVEL or chunk != 64 or name != deflate
        for changed, share, spread in CHANGES[-1:] if every else CHANGES:
            scrape()  # the scrape before

            def change(share: float = share, spread: bool = spread) -> None:
                world.touch(share, spread)

            seconds, body = timed(scrape, change, repeat)
            row(changed, f"cache, level {level}, {chunk} KiB, {cache.deflate}", seconds, body)
    for level in (GZIP_LEVEL, 1):

        def whole_page(level: int = level) -> bytes:
            return gzip.compress(render(world.ours, TEXT), level)

        seconds, body = timed(whole_page, world.touch, repeat)
        row("every series", f"`gzip.compress`, level {level}", seconds, body)
    return rows


def deflate_alone(page: bytes, repeat: int) -> list[str]:
    """Rows: each installed deflate at a few levels on ``page`` in 64 KiB pieces, then CRC-32."""
    pieces = [page[i : i + 65536] for i in range(0, len(page), 65536)]
    levels = {"isal": (0, 1, 2, 3), "zlib-ng": (1, 2, 6), "zlib": (1, 6)}
    rows = []
    for name in available_deflates():
        module = importlib.import_module(DEFLATES[name])
        for level in levels[name]:

            def deflate(module: Any = module, level: int = level) -> bytes:
                out = []
                for piece in pieces:
                    compressor = module.compressobj(level, zlib.DEFLATED, -15)
                    out.append(compressor.compress(piece) + compressor.flush(module.Z_FULL_FLUSH))
                return b"".join(out)

            seconds, body = timed(deflate, lambda: None, repeat)
            rows.append(f"| {name} | level {level} | {seconds * 1e3:.1f} ms | {len(body):,} B |")

        def crc(module: Any = module) -> bytes:
            for piece in pieces:
                module.crc32(piece)
            return b""

        seconds, _ = timed(crc, lambda: None, repeat)
        rows.append(f"| {name} | CRC-32 | {seconds * 1e3:.1f} ms | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="10,100,1000", help="comma-separated pair counts")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    parser.add_argument(
        "--deflate",
        default="auto",
        choices=["auto", *DEFLATES],
        help="the gzip cache's deflate (auto: the fastest installed, as the server picks)",
    )
    args = parser.parse_args()
    deflate = GzipCache(deflate=args.deflate).deflate

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    rows: list[str] = []
    idle_rows: list[str] = []
    change_rows: list[str] = []
    try:
        for pairs in (int(p) for p in args.pairs.split(",")):
            world = World(pairs)
            samples = same_data(world.ours, world.hand)
            for name, representation in (("text", TEXT), ("OpenMetrics", OPENMETRICS)):
                served, idle = measure(world, samples, name, representation, args.repeat, deflate)
                rows.extend(served)
                idle_rows.append(idle)
        change_rows = by_change(world, args.repeat, deflate)
        alone_rows = deflate_alone(render(world.ours, TEXT), args.repeat)
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]

    print(f"deflate: {deflate} (installed: {', '.join(available_deflates())})")
    print()
    print(
        f"## scrape as served, every series changed since the last scrape (best of {args.repeat})"
    )
    print("| pairs | format | gzip | body | ours | hand-written | ours / hand-written |")
    print("|---:|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("## idle re-scrape (nothing recorded since the last scrape) against a changed one")
    print("| pairs | format | after a change | idle | idle / changed |")
    print("|---:|---|---:|---:|---:|")
    print("\n".join(idle_rows))
    print()
    print(f"## gzip'd scrape (text) at {world.pairs} pairs by what changed since the last scrape")
    print("| changed | how | ours | / hand-written as served | body | / gzip level 6 of the page |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(change_rows))
    print()
    print(f"## deflate alone: the text page at {world.pairs} pairs in 64 KiB pieces")
    print("| deflate | level | time | deflate bytes |")
    print("|---|---|---:|---:|")
    print("\n".join(alone_rows))


if __name__ == "__main__":
    main()

"""The body ``MetricsServer`` sends for one scrape, against hand-written prometheus_client code.

For 10, 100 and 1000 (model, target) pairs with **every catalogue metric** holding data (the model
metrics for every pair, errors for every tenth pair, running requests per model, 4 pools with 8
pods each, build info), three cases:

* **scrape as served, after a change to every series**: ``render(registry, representation)`` (our
  writer), and that body through ``gzip.compress(body, 6)`` as the server sends it with
  ``Accept-Encoding: gzip``, in the text format and in OpenMetrics; against ``generate_latest`` /
  the OpenMetrics ``generate_latest`` of a registry of hand-written ``Counter``/``Gauge``/
  ``Histogram`` objects holding the same data (``*_created`` switched off, the cheaper setting),
  gzip at the same level. Before each timed scrape every series of both registries gets one more
  update, untimed, so nothing of ours can be reused from the scrape before: this is our worst case.
* **idle re-scrape**: ``render`` again with nothing recorded since the last one, against the first.
* The data is checked first: both registries must expose the same samples.

Times are the best of ``--repeat`` runs with the garbage collector off while timing (as
``benchmarks/common.per_call``); a gzip'd time is the render's plus the compression's, each timed on
its own. Run: ``.venv/bin/python -m benchmarks.bench_exposition`` (``--pairs 10,100,1000``,
``--repeat N``).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import time
from collections.abc import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from inference_metrics import CATALOG, Kind, MetricSpec, PrometheusBackend
from inference_metrics.backends import Series
from inference_metrics.exposition import TEXT, Representation, negotiate, render

from .common import same_data

GZIP_LEVEL = 6  # what MetricsServer compresses with
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")


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
    """The same series in our store and in hand-written prometheus_client metrics."""

    def __init__(self, pairs: int, seed: int = 1) -> None:
        self.pairs = pairs
        self.rng = random.Random(seed)
        self.ours, self.hand = CollectorRegistry(), CollectorRegistry()
        instruments = PrometheusBackend(self.ours).register(tuple(CATALOG))
        self.series: list[tuple[Kind, Series, Callable[[float], None], float]] = []
        for instrument in instruments:
            spec = instrument.spec
            theirs = _hand_written(spec, self.hand)
            top = spec.buckets[-1] if spec.buckets else 100.0
            for values in label_sets(spec, pairs):
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

    def touch(self) -> None:
        """One more update of every series, the same in both registries."""
        rng = self.rng
        for kind, ours, theirs, top in self.series:
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


def gzip_time(body: bytes, repeat: int) -> tuple[float, int]:
    seconds, compressed = timed(lambda: gzip.compress(body, GZIP_LEVEL), lambda: None, repeat)
    return seconds, len(compressed)


def hand_encoder(representation: Representation) -> Callable[[CollectorRegistry], bytes]:
    if representation.openmetrics:
        encoder: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
        return encoder
    return generate_latest


def measure(
    world: World, samples: int, name: str, representation: Representation, repeat: int
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
    ours_gz, ours_gz_len = gzip_time(ours_body, repeat)
    hand_gz, _ = gzip_time(hand_body, max(1, repeat - 1))
    served = [
        f"| {pairs} | {name} | off | {len(ours_body):,} B ({samples:,} samples) | "
        f"{ours_s * 1e3:.1f} ms | {hand_s * 1e3:.1f} ms | **{ours_s / hand_s:.3f}** |",
        f"| {pairs} | {name} | on | {ours_gz_len:,} B gzip'd | {(ours_s + ours_gz) * 1e3:.1f} ms | "
        f"{(hand_s + hand_gz) * 1e3:.1f} ms | **{(ours_s + ours_gz) / (hand_s + hand_gz):.3f}** |",
    ]
    changed_s, _ = timed(ours, world.touch, repeat)
    idle_s, _ = timed(ours, scraped, repeat)
    idle = (
        f"| {pairs} | {name} | {changed_s * 1e3:.1f} ms | {idle_s * 1e3:.2f} ms | "
        f"{idle_s / changed_s:.3f} |"
    )
    return served, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="10,100,1000", help="comma-separated pair counts")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    args = parser.parse_args()

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    rows: list[str] = []
    idle_rows: list[str] = []
    try:
        for pairs in (int(p) for p in args.pairs.split(",")):
            world = World(pairs)
            samples = same_data(world.ours, world.hand)
            for name, representation in (("text", TEXT), ("OpenMetrics", OPENMETRICS)):
                served, idle = measure(world, samples, name, representation, args.repeat)
                rows.extend(served)
                idle_rows.append(idle)
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]

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


if __name__ == "__main__":
    main()

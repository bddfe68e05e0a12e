"""Multiprocess mode against prometheus_client's own multiprocess mode, in one run.

* **record**: one whole request (the six parity calls) through
  ``Recorder(PrometheusBackend(registry, multiprocess_dir=...))``, against the same six updates
  written with prometheus_client's ``labels()`` API in its multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR`` set before it is imported), and with its children bound once.
* **scrape**: ``generate_latest`` of the merged view of 8 worker processes that each recorded the
  same 1000 (model, target) pairs (3 requests each), ours (``MultiprocessCollector`` of this
  library) against prometheus_client's ``MultiProcessCollector`` over files holding the same
  data; while the 8 workers live, and after they exited (ours then reads one compacted archive,
  prometheus_client still its 8 x 3 files). Also the merge alone (no text formatting), and our
  collector's text through our own writer (``exposition.render``) instead of
  ``generate_latest``: warm (lines of unchanged series reused, as in an idle re-scrape) and
  cold (a new collector each scrape: every key decoded and every line formatted again, the cost
  when every series changed).
* **record by histogram kind and with exemplars**: the six parity calls on ``bench_recorder``'s
  varied values, with the multiprocess store keeping classic buckets, native buckets
  (``histograms="native"``, each observation keyed and stored into its ``#native`` entry) or
  both, and with ``exemplars=True`` inside a sampled OpenTelemetry span (the exemplar slot
  written per observation), against prometheus_client's multiprocess ``labels()`` on the same
  values.

Run: ``.venv/bin/python -m benchmarks.bench_multiproc`` (``--number``, ``--rounds``, ``--pairs``,
``--workers``).
"""

from __future__ import annotations

import os
import tempfile

# prometheus_client picks its value class when first imported: set its directory before that.
_PROMETHEUS_DIR = tempfile.mkdtemp(prefix="bench-prometheus-multiproc-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _PROMETHEUS_DIR

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Callable  # noqa: E402

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

from inference_metrics import CATALOG, PrometheusBackend, Recorder  # noqa: E402
from inference_metrics.backends.multiproc import MultiprocessCollector  # noqa: E402
from inference_metrics.exposition import TEXT, render  # noqa: E402

from .bench_recorder import (  # noqa: E402
    HandWritten,
    bound_children_request,
    labels_request,
    record_requests,
    varied_labels,
    varied_parity,
    varied_requests,
)
from .common import (  # noqa: E402
    best_per_call,
    print_per_request,
    recorder_request,
    samples,
)


def written(registry: CollectorRegistry) -> bytes:
    """The text exposition through our own writer (what ``exposition.render`` serves)."""
    return render(registry, TEXT)


def alone(collector: MultiprocessCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def start_workers(ours_dir: str, workers: int, pairs: int) -> list[tuple[int, int]]:
    """Fork ``workers`` processes that record, report done, and wait until their pipe closes."""
    children: list[tuple[int, int]] = []
    for w in range(workers):
        done_r, done_w = os.pipe()
        hold_r, hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(done_r)
            os.close(hold_w)
            for _, earlier in children:  # or an earlier worker would never see its pipe close
                os.close(earlier)
            recorder = Recorder(PrometheusBackend(CollectorRegistry(), multiprocess_dir=ours_dir))
            hand = HandWritten(CollectorRegistry())
            record_requests(recorder, hand, pairs, random.Random(w))
            os.write(done_w, b"x")
            os.read(hold_r, 1)  # until the parent closes its end
            os._exit(0)
        os.close(done_w)
        os.close(hold_r)
        os.read(done_r, 1)
        os.close(done_r)
        children.append((pid, hold_w))
    return children


def stop_workers(children: list[tuple[int, int]]) -> None:
    for pid, hold in children:
        os.close(hold)
        os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="requests per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--pairs", type=int, default=1000, help="(model, target) pairs per worker")
    parser.add_argument("--workers", type=int, default=8, help="worker processes scraped")
    args = parser.parse_args()

    # The scrape first: workers forked later would inherit the record case's series.
    ours_dir = tempfile.mkdtemp(prefix="bench-ours-scrape-")
    children = start_workers(ours_dir, args.workers, args.pairs)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    collector = MultiprocessCollector(ours_dir, CATALOG)
    ours.register(collector)
    their_collector = MultiProcessCollector(theirs, _PROMETHEUS_DIR)  # type: ignore[no-untyped-call]
    if samples(ours) != samples(theirs):
        raise AssertionError("the two merged views do not hold the same data")
    if written(ours) != generate_latest(ours):
        raise AssertionError("our writer and generate_latest disagree")
    ours_bytes, theirs_bytes = len(generate_latest(ours)), len(generate_latest(theirs))
    results: dict[str, float] = {}
    live = best_per_call(
        {
            "prometheus_client `MultiProcessCollector`, 8 live workers": lambda: generate_latest(
                theirs
            ),
            "ours, 8 live workers": lambda: generate_latest(ours),
            "ours through our writer, 8 live workers": lambda: written(ours),
            "ours through our writer, cold (a new collector each scrape)": lambda: written(
                alone(MultiprocessCollector(ours_dir, CATALOG))
            ),
            "merge only: prometheus_client, 8 live workers": lambda: list(
                their_collector.collect()  # type: ignore[no-untyped-call]
            ),
            "merge only: ours, 8 live workers": lambda: list(collector.collect()),
        },
        rounds=args.rounds,
        number=1,
        repeat=2,
    )
    results.update(live)
    stop_workers(children)
    generate_latest(ours)  # the first scrape after they exited compacts their files
    files = sorted(os.listdir(ours_dir))
    exited = best_per_call(
        {
            "prometheus_client `MultiProcessCollector`, 8 exited workers": lambda: generate_latest(
                theirs
            ),
            "ours, 8 exited workers (compacted)": lambda: generate_latest(ours),
            "ours through our writer, 8 exited workers": lambda: written(ours),
        },
        rounds=args.rounds,
        number=1,
        repeat=2,
    )
    results.update(exited)
    print()
    print(f"## scrape of {args.workers} workers x {args.pairs} pairs (best of {args.rounds} x 2)")
    print(
        f"(exposition bytes: ours {ours_bytes}, prometheus_client {theirs_bytes}; files after "
        f"compaction: ours {len(files)} {files}, prometheus_client "
        f"{len(os.listdir(_PROMETHEUS_DIR))})"
    )
    print("| scrape | per scrape | x prometheus_client |")
    print("|---|---:|---:|")
    rows = [
        (
            "prometheus_client `MultiProcessCollector`, 8 live workers",
            "ours, 8 live workers",
            "ours through our writer, 8 live workers",
            "ours through our writer, cold (a new collector each scrape)",
        ),
        ("merge only: prometheus_client, 8 live workers", "merge only: ours, 8 live workers"),
        (
            "prometheus_client `MultiProcessCollector`, 8 exited workers",
            "ours, 8 exited workers (compacted)",
            "ours through our writer, 8 exited workers",
        ),
    ]
    for theirs_name, *ours_names in rows:
        base = results[theirs_name]
        for name in (theirs_name, *ours_names):
            print(f"| {name} | {results[name] * 1e3:.0f} ms | {results[name] / base:.2f} |")

    record_dir = tempfile.mkdtemp(prefix="bench-ours-record-")
    recorder = Recorder(PrometheusBackend(CollectorRegistry(), multiprocess_dir=record_dir))
    hand = HandWritten(CollectorRegistry())
    cases: dict[str, Callable[[], None]] = {
        "prometheus_client multiprocess, `labels()`": labels_request(hand),
        "prometheus_client multiprocess, children bound once": bound_children_request(hand),
        "`Recorder`, multiprocess, 6 parity calls": recorder_request(recorder),
    }
    best = best_per_call(cases, rounds=args.rounds, number=args.number)
    print()
    title = f"## record in multiprocess mode (best of {args.rounds} rounds x 3 x {args.number})"
    print_per_request(title, best, "prometheus_client multiprocess, `labels()`")

    kinds_dir = tempfile.mkdtemp(prefix="bench-ours-kinds-")
    record_kinds(hand, kinds_dir, args.rounds, args.number)

    for directory in (_PROMETHEUS_DIR, record_dir, ours_dir, kinds_dir):
        shutil.rmtree(directory, ignore_errors=True)


def record_kinds(hand: HandWritten, directory: str, rounds: int, number: int) -> None:
    """The six parity calls on varied values, by histogram kind and with exemplars."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    requests = varied_requests()

    def parity(**options: object) -> Callable[[], None]:
        registry = CollectorRegistry()
        backend = PrometheusBackend(registry, multiprocess_dir=directory, **options)  # type: ignore[arg-type]
        return varied_parity(Recorder(backend), requests)

    base = "prometheus_client multiprocess, `labels()`, varied values"
    cases: dict[str, Callable[[], None]] = {
        base: varied_labels(hand, requests),
        "`Recorder`, multiprocess, classic": parity(),
        '`Recorder`, multiprocess, `histograms="native"`': parity(histograms="native"),
        '`Recorder`, multiprocess, `histograms="both"`': parity(histograms="both"),
        "`Recorder`, multiprocess, classic, `exemplars=True`, in a sampled span": parity(
            exemplars=True
        ),
        '`Recorder`, multiprocess, `histograms="native", exemplars=True`, in a sampled span': (
            parity(histograms="native", exemplars=True)
        ),
    }
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("bench")
    with tracer.start_as_current_span("request"):  # no effect on the cases without exemplars
        best = best_per_call(cases, rounds=rounds, number=number)
    print()
    title = (
        f"## record in multiprocess mode by histogram kind, varied values (best of {rounds} "
        f"rounds x 3 x {number})"
    )
    print_per_request(title, best, base)


if __name__ == "__main__":
    main()

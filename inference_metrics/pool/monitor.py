"""The pool monitor: poll every endpoint's metrics page, keep a snapshot, set the pool gauges.

Upstream's behaviour (GIE v1.5.0 ``pkg/epp/datalayer``; llm-d-router keeps it), followed exactly:

* each endpoint is polled on its own schedule, every ``poll_interval``; one poll is bounded by
  ``timeout`` (1 s, upstream's ``defaultStepTimeout``). A reading updates only the numbers it
  carried; any number read refreshes the endpoint's update time.
* every ``aggregate_interval`` (5 s, ``--refresh-prometheus-metrics-interval``) the endpoints
  updated within ``staleness`` (2 s, ``--metrics-staleness-threshold``) are fresh;
  ``ready_pods`` is their number (set even when 0); KV-cache utilisation, queue size and running
  requests are their plain means (no rounding, as GIE v1.5.0); with none fresh the averages keep
  their last values. Under llm-d-router's schema (``pkg/epp/datalayer/logger/logger.go``) the
  sample standard deviations (``sqrt(SS / max(1, n - 1))``) are set too, and means and standard
  deviations are rounded to 2 decimals as Go's ``math.Round(x*100)/100``.
  ``per_pod_queue_size`` is set for every known endpoint, fresh or not.
* an endpoint that leaves discovery has its ``per_pod_queue_size`` series removed.

Poll errors and extract errors are recorded through the Recorder (upstream's
``RecordDataLayerPollError`` / ``RecordDataLayerExtractError``:
:meth:`~inference_metrics.Recorder.record_data_layer_poll_error` with source type
``metrics-data-source``, :meth:`~inference_metrics.Recorder.record_data_layer_extract_error` with
extractor type ``core-metrics-extractor``, each with this pool's name), counted on the monitor
(``poll_errors``, ``extract_errors``, and per endpoint in :meth:`PoolMonitor.snapshot`) and logged
at most once per ``error_log_interval`` per endpoint, without page contents or tokens. Which names
they show under is the schema's (docs/pool-monitor.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import quantities
from ..net.client import HTTPClient, HTTPError
from ..net.watch import TokenFile, TokenFileError
from ..validation import positive_int, positive_number
from .discovery import StaticDiscovery
from .endpoints import ClientTLS, Endpoint
from .parse import read_families
from .profiles import PROFILES, EngineNumbers, EngineProfile, Reading, extract, profile_for

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..recorder import Recorder

__all__ = [
    "DEFAULT_AGGREGATE_INTERVAL",
    "DEFAULT_MAX_PAGE_BYTES",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_STALENESS",
    "DEFAULT_TIMEOUT",
    "Discovery",
    "EndpointMetrics",
    "MonitorCollector",
    "PollError",
    "PoolMonitor",
]

logger = logging.getLogger(__name__)

#: Chosen from benchmarks/bench_pool.py (docs/pool-monitor.md, "Poll interval"): upstream polls
#: every 50 ms in Go; one poll costs this process a few hundred microseconds of CPU, so 200 ms
#: keeps a 100-endpoint pool to a fraction of one core while a picker's view is at most one
#: interval old, far inside the 2 s staleness threshold.
DEFAULT_POLL_INTERVAL = 0.2
DEFAULT_AGGREGATE_INTERVAL = 5.0
DEFAULT_STALENESS = 2.0
DEFAULT_TIMEOUT = 1.0
#: Largest page read (bytes after decompression); a longer one is a poll error.
DEFAULT_MAX_PAGE_BYTES = 16 << 20
DEFAULT_ERROR_LOG_INTERVAL = 60.0

_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
_SOURCE_TYPE = "metrics-data-source"
_EXTRACTOR_TYPE = "core-metrics-extractor"


class PollError(Exception):
    """A page could not be fetched (its message is safe to log: no body, no token)."""


class Discovery(Protocol):
    """Feeds the monitor the pool's current endpoints.

    :meth:`run` calls ``update`` with the whole current set each time it changes (or whenever it
    looks again); it may return (a static list) or run until cancelled.
    """

    async def run(self, update: Callable[[Sequence[Endpoint]], None]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointMetrics(EngineNumbers):
    """One endpoint as last seen: what a picker reads. Numbers are None until first read.

    ``updated_at``: the monitor clock's time of the last successful reading (None: never);
    ``fresh``: updated within the staleness threshold when the snapshot was taken.
    """

    endpoint: Endpoint
    updated_at: float | None = None
    fresh: bool = False
    poll_errors: int = 0
    extract_errors: int = 0

    def merged(self, reading: Reading, now: float) -> EndpointMetrics:
        """This endpoint after ``reading``: only the numbers it carried change."""
        lora = reading.max_adapters is not None
        return replace(
            self,
            queue=self.queue if reading.queue is None else reading.queue,
            running=self.running if reading.running is None else reading.running,
            kv_cache=self.kv_cache if reading.kv_cache is None else reading.kv_cache,
            running_adapters=reading.running_adapters if lora else self.running_adapters,
            waiting_adapters=reading.waiting_adapters if lora else self.waiting_adapters,
            max_adapters=reading.max_adapters if lora else self.max_adapters,
            block_size=self.block_size if reading.block_size is None else reading.block_size,
            num_blocks=self.num_blocks if reading.num_blocks is None else reading.num_blocks,
            updated_at=now if reading.updated else self.updated_at,
            extract_errors=self.extract_errors + len(reading.problems),
        )


class _Tracked:
    """The monitor's mutable state for one endpoint."""

    __slots__ = ("last_logged", "metrics", "profile", "task")

    def __init__(self, endpoint: Endpoint, profile: EngineProfile) -> None:
        self.metrics = EndpointMetrics(endpoint=endpoint)
        self.profile = profile
        self.task: asyncio.Task[None] | None = None
        self.last_logged = -math.inf


def _round2(value: float) -> float:
    """``value`` rounded to 2 decimals as Go's ``math.Round(x*100)/100`` (halves away from 0)."""
    scaled = value * 100
    whole = float(math.trunc(scaled))
    if abs(scaled - whole) >= 0.5:
        whole += math.copysign(1.0, scaled)
    return whole / 100


def _rounds_summary(recorder: Recorder) -> bool:
    """Whether the pool summary is llm-d-router's (rounded): a recorded schema has its
    standard-deviation gauges."""
    return recorder.records(quantities.POOL_STD_DEV_KV_CACHE)


class PoolMonitor:
    """Polls one pool's model servers and keeps the pool gauges of ``recorder`` up to date.

    Use as ``async with PoolMonitor(...) as monitor:`` (or :meth:`start` / :meth:`stop`) inside
    a running event loop. :meth:`snapshot` never waits. ``recorder`` None: a picker-only monitor
    that sets no gauges (the attribute ``recorder`` may be set later). ``clock``: monotonic
    seconds; ``fetch``: an async callable from a URL to its page (default: the library's h11
    client, :mod:`inference_metrics.net.client`, with the TLS, token and size bound given here),
    raising :class:`PollError` or ``OSError`` on failure.

    Needs nothing beyond the base dependencies.
    """

    def __init__(
        self,
        pool_name: str,
        discovery: Discovery | Iterable[Endpoint],
        *,
        recorder: Recorder | None = None,
        profiles: Mapping[str, EngineProfile] = PROFILES,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        aggregate_interval: float = DEFAULT_AGGREGATE_INTERVAL,
        staleness: float = DEFAULT_STALENESS,
        timeout: float = DEFAULT_TIMEOUT,
        tls: ClientTLS | None = None,
        bearer_token_file: str | Path | None = None,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        error_log_interval: float = DEFAULT_ERROR_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], Awaitable[bytes]] | None = None,
    ) -> None:
        if not isinstance(pool_name, str):
            raise TypeError(f"pool_name must be a string, got {pool_name!r}")
        if not pool_name:
            raise ValueError("pool_name must not be empty")
        self.pool_name = pool_name
        self.poll_interval = positive_number("poll_interval", poll_interval, "seconds")
        self.aggregate_interval = positive_number(
            "aggregate_interval", aggregate_interval, "seconds"
        )
        self.staleness = positive_number("staleness", staleness, "seconds")
        self.timeout = positive_number("timeout", timeout, "seconds")
        self.error_log_interval = positive_number(
            "error_log_interval", error_log_interval, "seconds"
        )
        self.max_page_bytes = positive_int("max_page_bytes", max_page_bytes)
        for engine, profile in profiles.items():
            if not isinstance(profile, EngineProfile):
                raise TypeError(f"profiles[{engine!r}] must be an EngineProfile, got {profile!r}")
        self.profiles = dict(profiles)
        self.recorder = recorder
        self._clock = clock
        self._fetch_page = fetch or self._fetch
        # Rebuilt per new connection when the CA or client certificate files change.
        self._client = HTTPClient(tls=(tls or ClientTLS()).watched(), max_idle=2)
        self._token = (
            TokenFile(bearer_token_file, check_interval=1.0, clock=clock)
            if bearer_token_file
            else None
        )
        if self._token is not None:
            try:
                self._token.read()  # unreadable or empty at start-up: say so now
            except TokenFileError as exc:
                raise ValueError(f"bearer_token_file: {exc}") from None
        self._tracked: dict[str, _Tracked] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self.poll_errors = 0
        self.extract_errors = 0
        self._discovery: Discovery | None = None
        if isinstance(discovery, StaticDiscovery):
            self.set_endpoints(discovery.endpoints)  # a bad engine is a start-up error
        elif hasattr(discovery, "run"):
            self._discovery = discovery  # type: ignore[assignment]
        else:
            self.set_endpoints(discovery)

    # --- endpoints ---------------------------------------------------------------------------

    def set_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """Make ``endpoints`` the pool (keyed by name). New ones start polling; departed ones
        stop and their series are removed. ValueError (nothing changed): an unknown engine."""
        wanted: dict[str, tuple[Endpoint, EngineProfile]] = {}
        for endpoint in endpoints:
            if not isinstance(endpoint, Endpoint):
                raise TypeError(f"endpoints must be Endpoint objects, got {endpoint!r}")
            wanted[endpoint.name] = (endpoint, profile_for(endpoint.engine, self.profiles))
        for name in [n for n in self._tracked if n not in wanted]:
            departed = self._tracked.pop(name)
            if departed.task is not None:
                departed.task.cancel()
            self._remove_pod_series(name)
        for name, (endpoint, profile) in wanted.items():
            known = self._tracked.get(name)
            if known is not None and known.metrics.endpoint == endpoint:
                continue
            if known is not None and known.task is not None:
                known.task.cancel()
            tracked = _Tracked(endpoint, profile)
            self._tracked[name] = tracked
            if self._running:
                tracked.task = asyncio.get_running_loop().create_task(
                    self._poll_loop(tracked), name=f"pool-monitor-poll-{name}"
                )

    @property
    def endpoints(self) -> list[Endpoint]:
        return [t.metrics.endpoint for t in self._tracked.values()]

    # --- the picker's view -------------------------------------------------------------------

    def snapshot(self) -> list[EndpointMetrics]:
        """Every known endpoint as last seen, ``fresh`` computed now. No I/O, no waiting; safe
        from another thread (each endpoint's record is replaced whole, never changed)."""
        now = self._clock()
        tracked = tuple(self._tracked.values())  # one C-level copy: no "changed size" mid-way
        return [replace(t.metrics, fresh=self._is_fresh(t.metrics, now)) for t in tracked]

    def _is_fresh(self, metrics: EndpointMetrics, now: float) -> bool:
        return metrics.updated_at is not None and now - metrics.updated_at <= self.staleness

    # --- polling -----------------------------------------------------------------------------

    async def _fetch(self, url: str) -> bytes:
        """The page at ``url``; :class:`PollError` in the HTTP client's or our own words."""
        headers = [("Accept", _ACCEPT)]
        try:
            if self._token is not None:
                headers.append(("Authorization", f"Bearer {self._token.read()}"))
            async with self._client.request("GET", url, headers=headers) as response:
                if response.status != 200:
                    raise PollError(f"HTTP status {response.status}")
                return await response.read(self.max_page_bytes)
        except (HTTPError, TokenFileError) as exc:
            failure = str(exc)  # written by us: no reply text, no token
        raise PollError(failure)

    async def poll(self, name: str) -> EndpointMetrics:
        """Poll the endpoint ``name`` once (bounded by ``timeout``); never raises for the
        endpoint's faults. Returns its metrics afterwards."""
        tracked = self._tracked[name]
        endpoint = tracked.metrics.endpoint
        problem = None
        try:
            async with asyncio.timeout(self.timeout):
                page = await self._fetch_page(endpoint.url)
        except TimeoutError:
            problem = f"no page within {self.timeout:g} s"
        except PollError as exc:
            problem = str(exc)
        except OSError as exc:  # from an injected fetch: the errno's text, never the message
            problem = type(exc).__name__ + (f": {os.strerror(exc.errno)}" if exc.errno else "")
        except Exception as exc:  # anything else the fetch met is this endpoint's fault
            problem = type(exc).__name__
        if self._tracked.get(name) is not tracked:
            return tracked.metrics  # it left the pool meanwhile
        if problem is not None:  # the one place a poll error is counted
            self.poll_errors += 1
            tracked.metrics = replace(tracked.metrics, poll_errors=tracked.metrics.poll_errors + 1)
            self._record_errors(tracked, polls=1)
            self._log(tracked, f"poll failed: {problem}")
            return tracked.metrics
        reading = extract(tracked.profile, read_families(page, tracked.profile.families))
        tracked.metrics = tracked.metrics.merged(reading, self._clock())
        if reading.problems:  # the one place extract errors are counted
            self.extract_errors += len(reading.problems)
            self._record_errors(tracked, extracts=len(reading.problems))
            self._log(tracked, "cannot read " + "; ".join(reading.problems))
        return tracked.metrics

    def _record_errors(self, tracked: _Tracked, *, polls: int = 0, extracts: int = 0) -> None:
        """The one place the data layer's error counters are recorded (one per extract problem,
        as the monitor's own counts)."""
        recorder = self.recorder
        if recorder is None:
            return
        pool = self.pool_name
        try:
            for _ in range(polls):
                recorder.record_data_layer_poll_error(_SOURCE_TYPE, pool_name=pool)
            for _ in range(extracts):
                recorder.record_data_layer_extract_error(
                    _SOURCE_TYPE, _EXTRACTOR_TYPE, pool_name=pool
                )
        except (TypeError, ValueError) as exc:  # a pool name the Recorder refuses
            self._log(tracked, f"cannot record its errors: {exc}")

    async def poll_all(self) -> list[EndpointMetrics]:
        """Poll every endpoint once, concurrently."""
        return list(await asyncio.gather(*(self.poll(name) for name in list(self._tracked))))

    def _log(self, tracked: _Tracked, message: str) -> None:
        now = self._clock()
        if now - tracked.last_logged < self.error_log_interval:
            return
        tracked.last_logged = now
        endpoint = tracked.metrics.endpoint
        # Without the query: it might carry a credential.
        url = endpoint.url.partition("?")[0]
        logger.warning(
            "pool %s endpoint %s (%s): %s (logged at most every %g s)",
            self.pool_name,
            endpoint.name,
            url,
            message,
            self.error_log_interval,
        )

    async def _poll_loop(self, tracked: _Tracked) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, self.poll_interval))  # spread the endpoints out
        name = tracked.metrics.endpoint.name
        while True:
            started = loop.time()
            try:
                await self.poll(name)
            except Exception:  # a bug here must not end the endpoint's polling silently
                logger.exception("pool %s endpoint %s: poll crashed", self.pool_name, name)
            await asyncio.sleep(max(0.0, self.poll_interval - (loop.time() - started)))

    # --- aggregation -------------------------------------------------------------------------

    def aggregate(self) -> None:
        """Set the pool gauges from the endpoints now, as upstream does every interval."""
        recorder = self.recorder
        if recorder is None:
            return
        now = self._clock()
        tracked = tuple(self._tracked.values())
        fresh = [t.metrics for t in tracked if self._is_fresh(t.metrics, now)]
        pool = self.pool_name
        try:
            recorder.record_pool_ready_pods(pool, len(fresh))
            if fresh:
                self._record_summary(recorder, fresh)
        except (TypeError, ValueError) as exc:  # a pool name the Recorder refuses
            logger.warning("pool %s: cannot record the pool gauges: %s", pool, exc)
        for t in tracked:
            metrics = t.metrics
            try:
                recorder.record_pool_per_pod_queue_size(
                    pool, metrics.endpoint.name, metrics.queue or 0.0
                )
            except (TypeError, ValueError) as exc:  # e.g. a pod name over the label bound
                self._log(t, f"cannot record its queue: {exc}")

    def _record_summary(self, recorder: Recorder, fresh: Sequence[EndpointMetrics]) -> None:
        """The pool's means (and, where a schema has them, sample standard deviations) over the
        fresh endpoints. A number never read counts as 0, as upstream's zero-valued metrics
        struct. Under llm-d-router's schema both are rounded to 2 decimals after the sums of
        squares were taken from the unrounded means (``calculateSummary``); GIE v1.5.0 sets the
        plain means."""
        pool = self.pool_name
        rounded = _rounds_summary(recorder)
        n = len(fresh)
        columns = (
            (
                [m.kv_cache or 0.0 for m in fresh],
                recorder.record_pool_kv_cache_utilization,
                recorder.record_pool_std_dev_kv_cache_utilization,
            ),
            (
                [m.queue or 0.0 for m in fresh],
                recorder.record_pool_queue_size,
                recorder.record_pool_std_dev_queue_size,
            ),
            (
                [m.running or 0.0 for m in fresh],
                recorder.record_pool_average_running_requests,
                recorder.record_pool_std_dev_running_requests,
            ),
        )
        for values, set_mean, set_std_dev in columns:
            mean = math.fsum(values) / n
            squares = math.fsum((v - mean) * (v - mean) for v in values)
            std_dev = math.sqrt(squares / max(1, n - 1))
            set_mean(pool, _round2(mean) if rounded else mean)
            set_std_dev(pool, _round2(std_dev) if rounded else std_dev)

    async def _aggregate_loop(self) -> None:
        while True:
            await asyncio.sleep(self.aggregate_interval)
            self.aggregate()

    # --- series removal -------------------------------------------------------------------

    def _remove_pod_series(self, pod_name: str) -> None:
        """The one place a departed endpoint's ``per_pod_queue_size`` series is dropped."""
        if self.recorder is not None:
            self.recorder.remove_pod(self.pool_name, pod_name)

    def _remove_pool_series(self) -> None:
        """The one place the pool's series (pool gauges and every pod's) are dropped."""
        if self.recorder is not None:
            for name in self._tracked:
                self.recorder.remove_pod(self.pool_name, name)
            self.recorder.remove_pool(self.pool_name)

    # --- life cycle --------------------------------------------------------------------------

    def _update_from_discovery(self, endpoints: Sequence[Endpoint]) -> None:
        try:
            self.set_endpoints(endpoints)
        except (TypeError, ValueError) as exc:
            logger.warning(
                "pool %s: discovery gave endpoints that cannot be used: %s", self.pool_name, exc
            )

    async def _discover(self, discovery: Discovery) -> None:
        while True:
            try:
                await discovery.run(self._update_from_discovery)
                return
            except Exception:
                logger.exception("pool %s: discovery failed; retrying", self.pool_name)
                await asyncio.sleep(self.aggregate_interval)

    async def start(self) -> None:
        """Start polling, aggregating and discovering (in the running event loop)."""
        if self._running:
            return
        loop = asyncio.get_running_loop()
        self._running = True
        for tracked in self._tracked.values():
            tracked.task = loop.create_task(self._poll_loop(tracked))
        self._tasks.append(loop.create_task(self._aggregate_loop()))
        if self._discovery is not None:
            self._tasks.append(loop.create_task(self._discover(self._discovery)))

    async def stop(self, *, remove_series: bool = True) -> None:
        """Stop every task and close the HTTP client; ``remove_series``: drop the pool's series."""
        self._running = False
        tasks = [*self._tasks, *(t.task for t in self._tracked.values() if t.task is not None)]
        self._tasks.clear()
        for tracked in self._tracked.values():
            tracked.task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()
        if remove_series:
            self._remove_pool_series()

    async def __aenter__(self) -> PoolMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def collector(self) -> MonitorCollector:
        """Deprecated: the error counters are recorded through the Recorder, in its schema's
        names (a registry holding the Recorder's metrics already exposes them; registering this
        collector there as well is refused as a name clash under the GIE schemas). It still
        returns a prometheus_client collector of this monitor's counts, for a registry of its
        own."""
        warnings.warn(
            "PoolMonitor.collector() is deprecated: the monitor records its poll and extract "
            "errors through its Recorder (Recorder.record_data_layer_poll_error / "
            "record_data_layer_extract_error), exposed with the Recorder's other metrics",
            DeprecationWarning,
            stacklevel=2,
        )
        return MonitorCollector(self)


class MonitorCollector:
    """Deprecated (see :meth:`PoolMonitor.collector`):
    ``inference_pool_datalayer_poll_errors_total{name,source_type}`` and
    ``inference_pool_datalayer_extract_errors_total{name,source_type,extractor_type}`` built from
    one monitor's counts."""

    def __init__(self, monitor: PoolMonitor) -> None:
        self._monitor = monitor

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        return self._families()

    def _families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        monitor = self._monitor
        polls = CounterMetricFamily(
            "inference_pool_datalayer_poll_errors",
            "Data-source poll errors per source type.",
            labels=["name", "source_type"],
        )
        polls.add_metric([monitor.pool_name, _SOURCE_TYPE], monitor.poll_errors)
        yield polls
        extracts = CounterMetricFamily(
            "inference_pool_datalayer_extract_errors",
            "Extract errors per source/extractor type.",
            labels=["name", "source_type", "extractor_type"],
        )
        extracts.add_metric(
            [monitor.pool_name, _SOURCE_TYPE, _EXTRACTOR_TYPE], monitor.extract_errors
        )
        yield extracts

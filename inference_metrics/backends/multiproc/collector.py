"""The merged view of a multiprocess directory as a prometheus_client collector.

Each collect reads the directory (:mod:`.reader`) under a lock on ``compact.lock``: exclusive when
no other scrape holds it (it then also compacts, :func:`.merge.compact`), shared otherwise, so no
scrape sees a half-done compaction. It merges the numbers (:mod:`.merge`), loads them into
in-process stores of its own through their snapshot API (:meth:`.store.MetricStore.load`: a series
whose merged numbers did not change keeps its rendered lines), and yields those stores' families,
which render as every family of :mod:`..writer` does.

A scrape never raises and never blocks because of the directory:

* what is not a regular file of ours is skipped with one warning (:mod:`.reader`);
* a compaction that cannot write (a read-only or full directory) is skipped, with a warning at
  most once a minute, and the scrape answers from the files as they are (the exited processes'
  files are read every time until a scrape can fold them);
* the lock is waited for at most :data:`LOCK_WAIT` seconds (a compaction takes milliseconds):
  after that, or when the directory cannot be listed, the scrape answers with the last merged
  view, with a warning at most once a minute;
* a directory where ``compact.lock`` cannot be opened is read without the lock, and not compacted.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ...spec import MetricSpec
from ..store import (
    MetricStore,
    StoredSeries,
    StoreOptions,
    check_histogram_options,
    store_options,
)
from ..writer import FamilyWriter, StoreFamily, empty_family
from .layout import COMPACT_LOCK, STORE_SPECS, check_directory
from .log import RateLimitedLog
from .merge import KeyDecoder, Merge, Shown, compact, remove_abandoned
from .reader import DirectoryReader

__all__ = ["LOCK_WAIT", "MultiprocessCollector"]

logger = logging.getLogger(__name__)

#: Seconds a scrape waits for another one's compaction before it answers with its last view.
LOCK_WAIT = 5.0


class MultiprocessCollector(Collector):
    """The merged metrics of every process writing to ``directory``, as prometheus_client
    families (see the module's docstring). ``specs`` are the metrics exposed; with
    ``store_metrics`` (the default) also the stores' own (:data:`~.layout.STORE_SPECS`): one
    collector per registry may have them. ``directory`` must be readable; a collector that
    cannot write there answers without compacting.

    ``histograms`` and ``exemplars``: how a histogram whose spec does not say is shown, as
    :class:`~..prometheus.PrometheusBackend` takes them (docs/native-histograms.md): its classic
    buckets, native buckets or both, with or without the exemplars the processes recorded. A
    series missing what its metric shows (recorded by processes with other settings) is left
    out, with a warning at most once a minute per metric.

    Safe to use from any number of processes and threads at once, writers or not.
    """

    def __init__(
        self,
        directory: object,
        specs: Iterable[MetricSpec],
        *,
        instruments: Sequence[object] = (),
        store_metrics: bool = True,
        histograms: str = "classic",
        exemplars: bool = False,
    ) -> None:
        check_histogram_options(histograms, exemplars)
        self.directory = check_directory(directory, writable=False)
        #: The instruments of the backend register call this collector exposes (none in an
        #: exporter that only reads).
        self.instruments = tuple(instruments)
        specs = tuple(specs)
        if store_metrics:
            names = {spec.name for spec in specs}
            specs += tuple(spec for spec in STORE_SPECS if spec.name not in names)
        self._specs = specs
        self._views = {
            spec.name: options
            for spec in specs
            if (options := store_options(spec, histograms, exemplars)) is not None
        }
        self._decode = KeyDecoder(specs)
        self._reader = DirectoryReader(self.directory)
        self._mirror = _Mirror(specs, self._views)
        #: Series in the order this collector first showed them.
        self._order: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self._log = RateLimitedLog(logger)

    @property
    def cached_files(self) -> tuple[str, ...]:
        """The process files whose parsed entries this collector keeps (at most those on
        disk)."""
        return self._reader.cached_files

    def describe(self) -> Iterator[Metric]:
        for spec in self._specs:
            yield empty_family(spec)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            merge = self._merge()
            if merge is not None:
                self._mirror.update(merge.shown(self._order, self._views))
                for name, why in merge.unshown.items():
                    self._log.warning(
                        f"unshown {name}",
                        "%s: series %s are left out of the merged view (this collector shows "
                        "%s histograms; give it, or the backend, the processes' settings)",
                        name,
                        why,
                        self._views[name].kind,
                    )
            families = self._mirror.families()
        yield from families

    def _merge(self) -> Merge | None:
        """The merged numbers of the directory now; None when it cannot be read now (the last
        view is then served again)."""
        held = self._lock_directory()
        if held is None:
            return None
        fd, exclusive = held
        unshown: dict[str, str] = {}
        try:
            scan = self._reader.scan()
            if exclusive:
                for name in scan.creating:
                    remove_abandoned(self.directory, name)
                exited = any(not source.live for source in scan.sources)
                if scan.archive_readable and (exited or scan.stale):
                    try:
                        scan = compact(self.directory, scan, self._decode, unshown)
                        assert scan.archive is not None
                        for name in scan.archive.absorbed:
                            self._reader.forget(name)
                    except OSError as exc:
                        self._log.warning(
                            "compaction",
                            "cannot compact the multiprocess directory %s (%s): scrapes answer "
                            "from the files as they are until one can write there (is it "
                            "read-only, or full?)",
                            self.directory,
                            exc.strerror or type(exc).__name__,
                        )
                    else:
                        self._log.forget("compaction")
            merge = Merge(self._decode, unshown)
            if scan.archive is not None:
                merge.add(scan.archive)
            for source in scan.sources:
                merge.add(source)
            self._decode.keep(merge)
            return merge
        except OSError as exc:
            self._log.warning(
                "listing",
                "cannot read the multiprocess directory %s (%s): answering with the last merged "
                "view",
                self.directory,
                exc.strerror or type(exc).__name__,
            )
            return None
        finally:
            if fd >= 0:
                os.close(fd)  # releases the flock

    def _lock_directory(self) -> tuple[int, bool] | None:
        """``compact.lock`` opened and locked: (its descriptor, whether exclusively); (-1, False)
        when it cannot be opened (read without it, never compact); None when another scrape
        held it exclusively for :data:`LOCK_WAIT` seconds."""
        fd = self._open_lock_file()
        if fd < 0:
            return fd, False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                return -1, False
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return fd, False
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    self._log.warning(
                        "lock",
                        "another scrape has held %s for more than %.0f s: answering with the "
                        "last merged view",
                        self.directory / COMPACT_LOCK,
                        LOCK_WAIT,
                    )
                    return None
                time.sleep(pause)
                pause = min(2 * pause, 0.05)

    def _open_lock_file(self) -> int:
        path = self.directory / COMPACT_LOCK
        flags = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        for mode in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                fd = os.open(path, mode | flags, 0o644)
            except OSError:
                continue
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                regular = False
            if regular:
                return fd
            os.close(fd)
            break
        self._log.warning(
            "lock file",
            "cannot use %s: reading the multiprocess directory without it, and not compacting",
            path,
        )
        return -1


class _Mirrored(NamedTuple):
    """A merged series as this collector's store holds it."""

    store: MetricStore
    label_values: tuple[str, ...]
    series: StoredSeries


class _Mirror:
    """The merged numbers, loaded into stores of this collector, rendered by :mod:`..writer`."""

    def __init__(self, specs: Sequence[MetricSpec], views: dict[str, StoreOptions]) -> None:
        self._stores = {spec.name: MetricStore(spec, views.get(spec.name)) for spec in specs}
        self._writers = [FamilyWriter(store) for store in self._stores.values()]
        self._shown: dict[bytes, _Mirrored] = {}

    def update(self, shown: list[Shown]) -> None:
        now: dict[bytes, _Mirrored] = {}
        for row in shown:
            mirrored = self._shown.get(row.key)
            if mirrored is None:
                store = self._stores[row.spec.name]
                mirrored = _Mirrored(store, row.label_values, store.bind(row.label_values))
            mirrored.series.load(row.snapshot)
            now[row.key] = mirrored
        for key in self._shown.keys() - now.keys():  # hidden since the last scrape
            hidden = self._shown[key]
            hidden.store.remove(hidden.label_values)
        self._shown = now

    def families(self) -> list[StoreFamily]:
        return [family for writer in self._writers if (family := writer.family()) is not None]

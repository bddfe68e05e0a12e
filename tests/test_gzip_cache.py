"""The gzip'd scrape: chunks compressed once and reused while unchanged, the whole a valid gzip
member of exactly what ``render`` returns; CRC-32 combined as zlib combines it."""

from __future__ import annotations

import gzip
import sys
import threading
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from inference_metrics import CATALOG, Kind, PrometheusBackend
from inference_metrics.backends import Series
from inference_metrics.backends.store import CounterSeries, HistogramSeries
from inference_metrics.exposition import TEXT, Representation, negotiate, render, render_pieces
from inference_metrics.gzip_cache import (
    _X2N,
    DEFLATES,
    MAX_SLOTS,
    GzipCache,
    _multmodp,
    available_deflates,
    crc32_combine,
    crc32_shift,
)

OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")
SPECS = [
    CATALOG["inference_model_request_total"],
    CATALOG["inference_model_request_duration_seconds"],
    CATALOG["inference_pool_average_kv_cache_utilization"],
]


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_combined_crcs_equal_the_crc_of_the_joined_bytes(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_a_combined_crc_over_a_long_second_part_equals_the_crc_of_the_whole() -> None:
    a, b = b"head" * 5, bytes(range(256)) * 4099
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("length", [-1, 1.5, True, "3"])
def test_a_bad_length_to_shift_a_crc_by_is_refused(length: object) -> None:
    with pytest.raises(ValueError, match="length must be an int >= 0"):
        crc32_shift(length)  # type: ignore[arg-type]


@pytest.mark.parametrize("crc", [-1, 2**32, 1.0])
def test_a_crc_out_of_range_is_refused(crc: object) -> None:
    with pytest.raises(ValueError, match="crc1 must be an int"):
        crc32_combine(crc, 0, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"level": 10}, "level must be"), ({"chunk_bytes": 0}, "chunk_bytes must be")],
)
def test_a_bad_level_or_chunk_size_is_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GzipCache(**arguments)


def test_pieces_and_keys_of_different_lengths_are_refused_and_nothing_is_cached() -> None:
    cache = GzipCache()
    with pytest.raises(ValueError, match="pieces and keys differ in length: 2 != 1"):
        cache.compress([b"a", b"b"], [1])
    assert cache._slots == {}


def recorded(pairs: int) -> tuple[CollectorRegistry, list[Series]]:
    registry = CollectorRegistry()
    instruments = PrometheusBackend(registry).register(SPECS)
    series = [
        instrument.bind(values)
        for instrument in instruments
        for values in (
            [(f"m{i}", f"t{i}") for i in range(pairs)]
            if instrument.spec.kind is not Kind.GAUGE
            else [(f"pool-{i}",) for i in range(pairs)]
        )
    ]
    return registry, series


def update(series: Series, amount: float) -> None:
    if isinstance(series, CounterSeries):
        series.add(amount)
    elif isinstance(series, HistogramSeries):
        series.observe(amount)
    else:
        series.set(amount)


def test_an_idle_rescrape_reuses_every_chunk_and_gives_the_same_bytes() -> None:
    registry, series = recorded(300)
    for one in series:
        update(one, 2.0)
    cache = GzipCache(chunk_bytes=4096)
    first = cache.compress(*render_pieces(registry, TEXT), TEXT)
    chunks = dict(cache._slots[TEXT])
    assert len(chunks) > 10
    assert cache.compress(*render_pieces(registry, TEXT), TEXT) == first
    assert all(cache._slots[TEXT][key].deflated is chunk.deflated for key, chunk in chunks.items())
    assert gzip.decompress(first) == render(registry, TEXT)


def test_a_change_recompresses_only_the_chunk_holding_the_changed_series() -> None:
    registry, series = recorded(300)
    for one in series:
        update(one, 2.0)
    cache = GzipCache(chunk_bytes=4096)
    cache.compress(*render_pieces(registry, TEXT), TEXT)
    before = [chunk.deflated for chunk in cache._slots[TEXT].values()]
    update(series[150], 7.0)
    body = cache.compress(*render_pieces(registry, TEXT), TEXT)
    after = [chunk.deflated for chunk in cache._slots[TEXT].values()]
    made_again = [new for new in after if not any(new is old for old in before)]
    assert len(made_again) == 1
    assert len(after) == len(before)
    assert gzip.decompress(body) == render(registry, TEXT)


@settings(max_examples=40, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.integers(0, 3 * 40 - 1), st.floats(0, 1e6, allow_nan=False)),
                max_size=30,
            ),
            st.booleans(),
            st.integers(1, 5000),
        ),
        min_size=1,
        max_size=5,
    ),
    pairs=st.integers(0, 40),
)
def test_a_gzip_render_decompresses_to_the_render_of_the_same_state(
    rounds: list[tuple[list[tuple[int, float]], bool, int]], pairs: int
) -> None:
    registry, series = recorded(pairs)
    cache = GzipCache(chunk_bytes=2048)
    for updates, openmetrics, chunk_bytes in rounds:
        cache.chunk_bytes = chunk_bytes
        for index, amount in updates:
            if index < len(series):
                update(series[index], amount)
        representation = OPENMETRICS if openmetrics else TEXT
        body = cache.compress(*render_pieces(registry, representation), representation)
        assert gzip.decompress(body) == render(registry, representation)


def test_the_cache_holds_compressed_bytes_not_the_page() -> None:
    registry, series = recorded(300)
    for one in series:
        update(one, 2.0)
    cache = GzipCache()
    body = cache.compress(*render_pieces(registry, TEXT), TEXT)
    held = sum(len(chunk.deflated) for chunk in cache._slots[TEXT].values())
    assert held <= len(body)
    assert len(body) < len(render(registry, TEXT)) / 5


@settings(max_examples=100, deadline=None)
@given(length=st.integers(0, 2**64))
def test_a_shift_by_bytes_equals_zlibs_shift_bit_by_bit(length: int) -> None:
    assert crc32_shift(length) == zlib_shift(length)


def zlib_shift(length: int) -> int:
    """zlib's x2nmodp(length, 3): one multiplication per set bit of the length."""
    p, k = 1 << 31, 3
    while length:
        if length & 1:
            p = _multmodp(_X2N[k & 31], p)
        length >>= 1
        k += 1
    return p


def test_threads_compressing_at_once_while_series_change_each_get_a_valid_gzip_body() -> None:
    registry, series = recorded(200)
    for one in series:
        update(one, 1.0)
    cache = GzipCache(chunk_bytes=4096)
    bodies: list[tuple[Representation, bytes]] = []
    errors: list[BaseException] = []

    def scrape(representation: Representation) -> None:
        try:
            for _ in range(10):
                pieces, keys = render_pieces(registry, representation)
                bodies.append((representation, cache.compress(pieces, keys, representation)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=scrape, args=(representation,))
        for representation in (TEXT, OPENMETRICS, TEXT, OPENMETRICS)
    ]
    for thread in threads:
        thread.start()
    for round_ in range(50):
        update(series[round_ * 7 % len(series)], 3.0)
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(bodies) == 40
    lines = {}
    for representation in (TEXT, OPENMETRICS):
        body = cache.compress(*render_pieces(registry, representation), representation)
        final = render(registry, representation)
        assert gzip.decompress(body) == final
        lines[representation] = [line.rpartition(b" ")[0] for line in final.splitlines()]
    for representation, body in bodies:
        page = gzip.decompress(body)  # checks the CRC and the size too
        # The same series in the same format (only values moved while the threads ran).
        assert [line.rpartition(b" ")[0] for line in page.splitlines()] == lines[representation]


def test_a_series_lines_can_be_dropped_but_not_replaced_so_stamps_stay_true() -> None:
    registry, series = recorded(1)
    counter = series[0]
    assert isinstance(counter, CounterSeries)
    update(counter, 1.0)
    render(registry, TEXT)
    line = b'inference_model_request_total{model_name="m0",target_model_name="t0"} 1.0\n'
    with pytest.raises(ValueError, match="rendered can only be reset to None, got bytes"):
        counter.rendered = b"forged 1.0\n"  # type: ignore[assignment]
    assert counter.rendered == line
    counter.rendered = None
    assert counter.rendered is None


def test_accept_headers_naming_many_versions_share_one_cached_page_per_format() -> None:
    registry, series = recorded(20)
    for one in series:
        update(one, 1.0)
    cache = GzipCache()
    for n in range(50):
        representation = negotiate(f"application/openmetrics-text; version=1.0.{n}")
        assert gzip.decompress(cache.render(registry, representation)) == render(
            registry, representation
        )
    cache.render(registry, TEXT)
    assert set(cache._slots) == {False, True}


def test_no_more_than_max_slots_compressions_are_kept() -> None:
    cache = GzipCache()
    for slot in range(MAX_SLOTS + 3):
        cache.compress([b"x"], [slot + 1], slot)
    assert list(cache._slots) == list(range(3, MAX_SLOTS + 3))


def deflate_installed(name: str) -> str:
    if name not in available_deflates():
        pytest.skip(f"{name} is not installed (the dev extras install it; .ci/run checks)")
    return name


@pytest.fixture(params=list(DEFLATES))
def deflate(request: pytest.FixtureRequest) -> str:
    return deflate_installed(request.param)


@pytest.fixture
def without_fast_deflates(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if neither isal nor zlib-ng were installed (an import of a None module raises)."""
    for name in ("isal", "isal.isal_zlib", "zlib_ng", "zlib_ng.zlib_ng"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("name", list(DEFLATES))
@settings(max_examples=30, deadline=None)
@given(
    rounds=st.lists(
        st.lists(st.tuples(st.integers(0, 3 * 30 - 1), st.floats(0, 1e6)), max_size=30),
        min_size=1,
        max_size=4,
    ),
    level=st.integers(0, 9),
)
def test_every_installed_deflate_makes_bodies_stdlib_gzip_reads_as_the_render(
    name: str, rounds: list[list[tuple[int, float]]], level: int
) -> None:
    registry, series = recorded(30)
    cache = GzipCache(level, chunk_bytes=1024, deflate=deflate_installed(name))
    for updates in rounds:
        for index, amount in updates:
            update(series[index], amount)
        body = cache.render(registry, TEXT)
        assert gzip.decompress(body) == render(registry, TEXT)


def test_chunks_made_by_every_deflate_concatenate_into_one_valid_member() -> None:
    pieces = [b'a_total{x="%d"} %d.0\n' % (i, i * 7) for i in range(3000)]
    deflated = []
    for name in available_deflates():
        cache = GzipCache(chunk_bytes=4096, deflate=name)
        member = cache.compress(pieces, list(range(1, 3001)))
        assert gzip.decompress(member) == b"".join(pieces)
        deflated.append(zlib.decompressobj(-15).decompress(member[10:-8]))
    assert deflated == [b"".join(pieces)] * len(deflated)


def test_auto_compresses_with_the_fastest_installed_deflate() -> None:
    assert GzipCache().deflate == available_deflates()[0]


@pytest.mark.parametrize("name", ["isal", "zlib-ng"])
def test_a_fast_deflate_is_found_when_installed(name: str) -> None:
    deflate_installed(name)
    assert GzipCache(deflate=name).deflate == name
    assert available_deflates().index(name) < available_deflates().index("zlib")


@pytest.mark.usefixtures("without_fast_deflates")
def test_without_a_fast_deflate_installed_the_standard_librarys_is_used() -> None:
    assert available_deflates() == ("zlib",)
    registry, series = recorded(50)
    for one in series:
        update(one, 3.0)
    cache = GzipCache()
    assert cache.deflate == "zlib"
    assert gzip.decompress(cache.render(registry, TEXT)) == render(registry, TEXT)


@pytest.mark.usefixtures("without_fast_deflates")
def test_asking_for_a_deflate_that_is_not_installed_is_refused() -> None:
    with pytest.raises(ValueError, match="deflate 'isal' is not installed here"):
        GzipCache(deflate="isal")


def test_an_unknown_deflate_is_refused() -> None:
    with pytest.raises(ValueError, match=r"deflate must be 'auto' or one of .*got 'brotli'"):
        GzipCache(deflate="brotli")


def test_level_zero_stores_the_page_uncompressed_whatever_the_deflate(deflate: str) -> None:
    page = bytes(range(256)) * 64
    body = GzipCache(0, deflate=deflate).compress([page], [1])
    assert gzip.decompress(body) == page
    assert len(body) > len(page)


def test_isal_takes_zlib_levels_by_thirds_onto_its_own_one_to_three() -> None:
    deflate_installed("isal")
    from isal import isal_zlib

    page = b"".join(b'm_bucket{le="%d"} %d.0\n' % (i % 40, i) for i in range(20000))
    bodies = {
        level: GzipCache(level, deflate="isal").compress([page], [1]) for level in range(1, 10)
    }
    for level, body in bodies.items():
        own = isal_zlib.compressobj((level + 2) // 3, zlib.DEFLATED, -15)
        raw = own.compress(page) + own.flush(isal_zlib.Z_FULL_FLUSH)
        assert body[10:-8] == raw + zlib.compressobj(6, zlib.DEFLATED, -15).flush()


def cuts_piece_by_piece(pieces: list[bytes], keys: list[int], limit: int) -> list[tuple[int, int]]:
    """The chunking rule stated one piece at a time (the reference for GzipCache._cuts)."""
    cuts: list[tuple[int, int]] = []
    start = size = run = count = 0
    for i, (piece, key) in enumerate(zip(pieces, keys, strict=True)):
        if key <= 0:
            if i > start and (key == 0 or size >= limit or keys[start] == 0):
                cuts.append((start, i))
                start, size = i, 0
            run = count = 0
        else:
            if not run and piece:
                run = 1 << max(0, (limit // len(piece)).bit_length() - 1)
            elif run and count >= run:
                cuts.append((start, i))
                start, size, count = i, 0, 0
            count += 1
        size += len(piece)
    if start < len(pieces):
        cuts.append((start, len(pieces)))
    return cuts


@settings(max_examples=300, deadline=None)
@given(
    page=st.lists(
        st.tuples(st.integers(0, 300), st.sampled_from([1, 1, 1, 1, 0, -1])), max_size=120
    ),
    limit=st.integers(1, 2000),
)
def test_chunks_are_cut_where_the_piece_by_piece_rule_cuts_them(
    page: list[tuple[int, int]], limit: int
) -> None:
    pieces = [b"x" * size for size, _ in page]
    keys = [kind * (i + 1) for i, (_, kind) in enumerate(page)]
    cuts = GzipCache(chunk_bytes=limit)._cuts(pieces, keys)
    assert cuts == cuts_piece_by_piece(pieces, keys, limit)

"""The pool monitor's page reader: the families it is asked for, exactly as prometheus_client's
own parser reads them, and nothing ever raised whatever the bytes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inference_metrics.pool import read_families

from .model_servers import Load, vllm_page


def test_only_the_asked_families_are_read_with_their_labels_and_types() -> None:
    page = vllm_page([Load(queue=4, running=2, kv_cache=0.5), Load(queue=1)]).encode()
    read = read_families(page, ["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"])
    assert set(read.samples) == {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}
    waiting = read.samples["vllm:num_requests_waiting"]
    assert [(s.labels["engine"], s.value) for s in waiting] == [("0", 4.0), ("1", 1.0)]
    assert waiting[0].labels["model_name"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert read.types == {"vllm:num_requests_waiting": "gauge", "vllm:kv_cache_usage_perc": "gauge"}


def test_a_name_is_not_matched_by_a_longer_name_that_starts_with_it() -> None:
    page = b"# TYPE q_total counter\nq_total 5\nq_other 6\nq 7\n"
    read = read_families(page, ["q"])
    assert [s.value for s in read.samples["q"]] == [7.0]
    assert read.types["q"] == "untyped"


def test_an_absent_family_is_absent_and_a_page_without_newline_at_the_end_is_read() -> None:
    read = read_families(b'a 1\nb{x="y"} 2', ["b", "c"])
    assert [(s.labels, s.value) for s in read.samples["b"]] == [({"x": "y"}, 2.0)]
    assert "c" not in read.samples


def test_escapes_timestamps_and_special_values_read_as_prometheus_client_reads_them() -> None:
    page = (
        b'g{a="x\\"y",b="line\\nbreak",c="back\\\\slash",d="\xc3\xa9"} +Inf 1700000000000\n'
        b'g{a="nan"} NaN\n'
        b"g{} -1.5e-3\n"
    )
    read = read_families(page, ["g"])
    samples = read.samples["g"]
    assert samples[0].labels == {"a": 'x"y', "b": "line\nbreak", "c": "back\\slash", "d": "é"}
    assert samples[0].value == math.inf
    assert math.isnan(samples[1].value)
    assert samples[2].labels == {}
    assert samples[2].value == -0.0015
    reference = [s for f in text_string_to_metric_families(page.decode()) for s in f.samples]
    assert [s.labels for s in reference] == [s.labels for s in samples]


def test_malformed_lines_of_an_asked_family_are_counted_and_skipped() -> None:
    page = b'g{a="1"} 1\ng{a="2"} notanumber\ng{a=unquoted} 3\ng{a="3" 4\ng 5\n'
    read = read_families(page, ["g"])
    assert [s.value for s in read.samples["g"]] == [1.0, 5.0]
    assert read.bad_lines == 3


def test_a_family_repeated_endlessly_keeps_only_the_first_samples() -> None:
    page = b"".join(b'g{i="%d"} %d\n' % (i, i) for i in range(50))
    read = read_families(page, ["g"], max_samples=20)
    assert [s.value for s in read.samples["g"]] == [float(i) for i in range(20)]


label_values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model_name", "engine", "x", "le_"]),
        label_values,
        max_size=4,
    ).flatmap(
        lambda labels: st.tuples(
            st.just(sorted(labels)),
            st.lists(
                st.tuples(
                    st.tuples(*(label_values for _ in labels)),
                    st.floats(allow_nan=False, width=64),
                ),
                max_size=5,
                unique_by=lambda row: row[0],
            ),
        )
    )
)
def test_samples_equal_prometheus_clients_for_any_labels_and_values(
    shape: tuple[list[str], list[tuple[tuple[str, ...], float]]],
) -> None:
    names, rows = shape
    registry = CollectorRegistry()
    gauge = Gauge("g", "help", names, registry=registry)
    for values, value in rows:
        (gauge.labels(*values) if names else gauge).set(value)
    page = generate_latest(registry)
    ours = read_families(page, ["g"]).samples.get("g", [])
    theirs = [
        s for f in text_string_to_metric_families(page.decode()) for s in f.samples if s.name == "g"
    ]
    assert [(s.labels, s.value) for s in ours] == [(s.labels, s.value) for s in theirs]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.text(max_size=20), max_size=4))
def test_arbitrary_bytes_and_names_never_raise(page: bytes, names: list[str]) -> None:
    read = read_families(page, names)
    assert read.bad_lines >= 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"g", b"{", b"}", b'"', b"\\", b"=", b",", b" ", b"\n", b"a", b"1", b"NaN", b"\xff"]
        ),
        max_size=80,
    )
)
def test_near_miss_lines_of_an_asked_family_never_raise(pieces: list[bytes]) -> None:
    read_families(b"g" + b"".join(pieces), ["g"])

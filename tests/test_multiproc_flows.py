"""Flow control under N worker processes (the multiprocess store): how the new gauges merge and
what a deletion does.

Each worker runs its own flow-control layer, so a flow's queue size and bytes are per-process
shares, summed over live processes; ``delete_flow_control_flow_series`` in one worker (its flow
registry collected an idle flow) forgets that worker's share only. Saturation and the capacity
ratios are levels: the most recent set wins, and a deletion hides the series everywhere until a
process sets it again. Counters and histograms are never removed from the merged view (a counter
must not go backwards). Real processes (fork), real files, the merged exposition as a scraper
reads it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.backends import multiproc
from inference_metrics.exposition import negotiate, render
from inference_metrics.schemas import get_schema

from .expo import parse_text
from .test_multiproc import in_child, run_child, wait
from .test_schema_recording import record_the_picker

SCHEMA = get_schema("llm-d-router")
FLOW = ("tenant-a", "1")
TARGET = ("pool-1", "m", "t")
LABELS = dict(
    zip(
        ("fairness_id", "priority", "inference_pool", "model_name", "target_model_name"),
        (*FLOW, *TARGET),
        strict=True,
    )
)
SIZE = "llm_d_epp_flow_control_queue_size"


def recorder_in(directory: Path) -> Recorder:
    backend = PrometheusBackend(CollectorRegistry(), multiprocess_dir=directory)
    return Recorder(backend, schema=SCHEMA)


def value(directory: Path, metric: str, **labels: str) -> float | None:
    """A sample of the merged exposition, as a scraper that records nothing reads it."""
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(directory, SCHEMA.catalog))
    families = parse_text(generate_latest(registry).decode())
    for family in families.values():
        found = family.samples.get((metric, frozenset(labels.items())))
        if found is not None:
            return found
    return None


@contextlib.contextmanager
def live_child(work: Callable[[], object]) -> Iterator[None]:
    """A worker that ran ``work`` and stays alive (its file locked) until the block ends."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()

    def child() -> None:
        work()
        os.write(ready_w, b"x")
        os.read(stop_r, 1)

    pid = in_child(child)
    try:
        assert os.read(ready_r, 1) == b"x"
        yield
    finally:
        os.write(stop_w, b"x")
        assert wait(pid) == 0
        for fd in (ready_r, ready_w, stop_r, stop_w):
            os.close(fd)


def queued(times: int) -> Callable[[Path], Callable[[], None]]:
    def in_directory(directory: Path) -> Callable[[], None]:
        def work() -> None:
            recorder = recorder_in(directory)
            for _ in range(times):
                recorder.inc_flow_control_queue_size(*FLOW, *TARGET)

        return work

    return in_directory


def test_queue_sizes_are_summed_over_live_workers(tmp_path: Path) -> None:
    with live_child(queued(2)(tmp_path)):
        recorder = recorder_in(tmp_path)
        recorder.inc_flow_control_queue_size(*FLOW, *TARGET)
        recorder.add_flow_control_queue_bytes(*FLOW, *TARGET, 100)
        assert value(tmp_path, SIZE, **LABELS) == 3
        assert value(tmp_path, "llm_d_epp_flow_control_queue_bytes", **LABELS) == 100


def test_deleting_a_flow_forgets_this_worker_s_share_only(tmp_path: Path) -> None:
    with live_child(queued(2)(tmp_path)):
        recorder = recorder_in(tmp_path)
        recorder.inc_flow_control_queue_size(*FLOW, *TARGET)
        recorder.delete_flow_control_flow_series(*FLOW)
        # The other worker still holds two requests of the flow: its share stays shown.
        assert value(tmp_path, SIZE, **LABELS) == 2
        assert value(tmp_path, "inference_extension_flow_control_queue_size", **LABELS) == 2


def test_a_flow_seen_again_after_its_deletion_counts_from_zero_in_every_worker(
    tmp_path: Path,
) -> None:
    recorder = recorder_in(tmp_path)
    recorder.inc_flow_control_queue_size(*FLOW, *TARGET)
    recorder.delete_flow_control_flow_series(*FLOW)
    assert value(tmp_path, SIZE, **LABELS) is None  # no worker holds a share: gone
    with live_child(queued(1)(tmp_path)):  # another worker sees the flow again
        recorder.inc_flow_control_queue_size(*FLOW, *TARGET)
        assert value(tmp_path, SIZE, **LABELS) == 2


def test_a_deleted_stage_s_saturation_is_hidden_in_every_worker_until_set_again(
    tmp_path: Path,
) -> None:
    def saturated(level: float) -> Callable[[], None]:
        return lambda: recorder_in(tmp_path).record_flow_control_pool_saturation(
            "pool-1", "prefill", level
        )

    run_child(saturated(0.5))
    stage = {"inference_pool": "pool-1", "stage": "prefill"}
    recorder = recorder_in(tmp_path)  # each worker's dispatch loop sets and deletes its own
    recorder.record_flow_control_pool_saturation("pool-1", "prefill", 0.6)
    assert value(tmp_path, "llm_d_epp_flow_control_pool_saturation", **stage) == 0.6
    recorder.delete_flow_control_pool_saturation("pool-1", "prefill")
    assert value(tmp_path, "llm_d_epp_flow_control_pool_saturation", **stage) is None
    run_child(saturated(0.75))
    assert value(tmp_path, "llm_d_epp_flow_control_pool_saturation", **stage) == 0.75


def test_capacity_ratios_hold_the_most_recent_value_set_by_any_worker(tmp_path: Path) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_flow_control_capacity_utilization_requests("1", "pool-1", 0.25)
    run_child(
        lambda: recorder_in(tmp_path).record_flow_control_capacity_utilization_requests(
            "1", "pool-1", 0.5
        )
    )
    band = {"priority": "1", "inference_pool": "pool-1"}
    assert value(tmp_path, "llm_d_epp_flow_control_capacity_utilization_requests", **band) == 0.5


def test_a_deleted_flow_s_histograms_stay_in_the_merged_view(tmp_path: Path) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_flow_control_request_enqueue_duration(*FLOW, "Dispatched", 0.001)
    recorder.delete_flow_control_flow_series(*FLOW)
    name = "llm_d_epp_flow_control_request_enqueue_duration_seconds_count"
    labels = {"fairness_id": "tenant-a", "priority": "1", "outcome": "Dispatched"}
    assert value(tmp_path, name, **labels) == 1


@pytest.mark.parametrize("schema", ["llm-d-router", "gie-v1.5"])
def test_the_merged_view_of_the_picker_s_metrics_is_the_single_process_one_byte_for_byte(
    tmp_path: Path, schema: str
) -> None:
    single, multi = CollectorRegistry(), CollectorRegistry()
    for registry, directory in ((single, None), (multi, tmp_path)):
        recorder = Recorder(PrometheusBackend(registry, multiprocess_dir=directory), schema=schema)
        for tenant in ("tenant-a", "tenant-b"):
            record_the_picker(recorder, fairness_id=tenant)
        recorder.dec_flow_control_queue_size("tenant-a", "2", "p", "m", "t")
        recorder.record_flow_control_pool_saturation("p", "prefill", 1.25)
        recorder.record_scheduler_attempt(RuntimeError("no fit"), "t", None)
    assert generate_latest(multi) == generate_latest(single)
    openmetrics = negotiate("application/openmetrics-text; version=1.0.0")
    assert render(multi, openmetrics) == render(single, openmetrics)

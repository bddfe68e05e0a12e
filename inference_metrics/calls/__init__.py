"""The Recorder's calls for the endpoint picker's internals, by upstream's names.

Each module is a mixin of :class:`~inference_metrics.recorder.Recorder` holding one family of
upstream's recording functions (llm-d-router ``pkg/epp/metrics/metrics.go``) as methods named by
the rule of docs/schemas.md ("Upstream's recording functions"): the Go name in snake_case, the
Go parameters in snake_case in upstream's order, positional-or-keyword, ``ctx`` dropped,
durations and times as float seconds, ``err`` as an exception or None, a scheduling result as the
chosen endpoint's ``(name, namespace, port)`` or None, and upstream's ``bool`` returns.

* :mod:`.requests`: a request's per-metric calls (counts, errors, sizes, tokens, running
  requests), under this library's original names and upstream's;
* :mod:`.latencies`: a request's latencies (latency, NTPOT, TTFT, TPOT, inter-token latency),
  under both sets of names too (:mod:`.forms`: the calls that take both forms of arguments);
* :mod:`.pools`: a pool's gauges, per-endpoint queues, build info, the data layer's errors;
* :mod:`.scheduling`: the scheduler, its plugins, the picker's own processing time, model rewrites;
* :mod:`.flow_control`: the flow-control layer (queues, dispatch, saturation, capacity,
  revocations) and the deletion of a flow's series.

The whole-request event calls (``record_request_started``, ``record_request_completed``, ...)
are the Recorder's own (:mod:`inference_metrics.recorder`).

Each call validates its arguments (``TypeError``/``ValueError`` naming the argument, nothing
recorded), finds its label set's row in its group (:mod:`inference_metrics.measures`) with one
dictionary lookup and feeds the measures it derives; what is exposed, under which names, is the
schema's (:mod:`inference_metrics.schemas`).
"""

from __future__ import annotations

from .flow_control import FlowControlCalls
from .latencies import LatencyCalls
from .pools import PoolCalls
from .requests import RequestCalls
from .scheduling import SchedulingCalls

__all__ = ["FlowControlCalls", "LatencyCalls", "PoolCalls", "RequestCalls", "SchedulingCalls"]

"""``--histograms`` and ``--exemplars``: how a command's Prometheus backend keeps histograms.

``HistogramOptions().add_to(parser)`` adds both flags; :meth:`HistogramOptions.backend_arguments`
returns the keyword arguments of :class:`~inference_metrics.PrometheusBackend` they stand for
(``histograms=``, ``exemplars=``), and :meth:`HistogramOptions.tracer` a tracer whose spans are
all sampled, for a command that makes its own traffic (the demo). ``--exemplars`` needs the
OpenTelemetry API and SDK (the ``otel`` extra): without them it is an
:class:`~.parsing.OptionError` naming the extra. See docs/native-histograms.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from ..spec import HISTOGRAM_KINDS
from .parsing import OptionError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["BackendArguments", "HistogramOptions"]


class BackendArguments(TypedDict):
    """The keyword arguments of :class:`~inference_metrics.PrometheusBackend` the flags set."""

    histograms: str
    exemplars: bool


_EXTRA = "--exemplars needs the OpenTelemetry API and SDK: pip install 'inference-metrics[otel]'"


@dataclass(frozen=True)
class HistogramOptions:
    """The histogram flags of one command."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--histograms",
            choices=HISTOGRAM_KINDS,
            default="classic",
            help="classic: upstream's buckets; native: native histograms (schema 3, served in "
            "protobuf to a Prometheus that asks for it); both: native and classic (text and "
            "OpenMetrics pages stay classic); see docs/native-histograms.md (default: "
            "%(default)s)",
        )
        parser.add_argument(
            "--exemplars",
            action="store_true",
            help="latency observations made in a sampled OpenTelemetry span carry its trace_id "
            "and span_id as exemplars (OpenMetrics and protobuf; needs the otel extra)",
        )

    def backend_arguments(self, args: argparse.Namespace) -> BackendArguments:
        """``histograms=`` and ``exemplars=`` for the backend; OptionError naming the extra when
        ``--exemplars`` is given without the OpenTelemetry API."""
        if args.exemplars:
            from ..backends.exemplars import span_reader

            try:
                span_reader()
            except ImportError:
                raise OptionError(_EXTRA) from None
        return BackendArguments(histograms=args.histograms, exemplars=bool(args.exemplars))

    def tracer(self, args: argparse.Namespace) -> Tracer | None:
        """A tracer whose every span is sampled, with ``--exemplars``; None without. Its spans
        go nowhere (no exporter): they exist so that observations made in them carry ids."""
        if not args.exemplars:
            return None
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        except ImportError:
            raise OptionError(_EXTRA) from None
        return TracerProvider(sampler=ALWAYS_ON).get_tracer("inference-metrics")

"""The ``inference-metrics`` command: ``docs``, ``demo``, ``serve``.

The flags and what they make live in :mod:`inference_metrics.options` (one module per
subsystem); this module wires them into the three commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from .backends.prometheus import PrometheusBackend
from .options import (
    CommandParser,
    HistogramOptions,
    MultiprocessOptions,
    OptionError,
    PoolOptions,
    SchemaOptions,
    ServerOptions,
)
from .recorder import Recorder
from .reference import render_reference
from .simulate import run_traffic

if TYPE_CHECKING:
    from .pool import PoolMonitor
    from .server import MetricsServer

logger = logging.getLogger("inference_metrics.cli")

SERVE_SERVER = ServerOptions(default_host="0.0.0.0")
DEMO_SERVER = ServerOptions(default_host="127.0.0.1")
POOL = PoolOptions()
SCHEMAS = SchemaOptions(several=True)
DOCS_SCHEMA = SchemaOptions(several=False)
MULTIPROCESS = MultiprocessOptions()
HISTOGRAMS = HistogramOptions()


def _cmd_docs(args: argparse.Namespace) -> int:
    schemas = DOCS_SCHEMA.schemas(args)
    schema = schemas[0] if schemas else None
    native = args.histograms == "native"
    if args.format == "markdown":
        if native:
            raise OptionError("--histograms only applies with --format grafana or rules")
        sys.stdout.write(render_reference(schema))
        return 0
    from .dashboards import render_dashboard, render_rules

    if schema is None:
        raise OptionError(f"--format {args.format} needs --schema NAME")
    render = render_dashboard if args.format == "grafana" else render_rules
    sys.stdout.write(render(schema, native=native))
    return 0


# ----------------------------------------------------------------------------- serve and demo


async def _run_until_signalled(server: MetricsServer) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, server.request_stop)
    await server.serve()


def _serve(
    args: argparse.Namespace,
    server: MetricsServer,
    what: str,
    pool: PoolMonitor | None = None,
) -> int:
    async def main() -> None:
        await server.astart()
        if pool is not None:
            await pool.start()
            what_polled = ", ".join(e.name for e in pool.endpoints) or "discovered endpoints"
            print(f"inference-metrics {args.command}: pool {pool.pool_name}: polling {what_polled}")
        message = f"inference-metrics {args.command}: serving {what} on {server.url}/metrics"
        message += f" ({ServerOptions.describe_auth(args)}); Ctrl-C to stop"
        if server.tls is not None and server.tls.certificate_pem is not None:
            der = ssl.PEM_cert_to_DER_cert(server.tls.certificate_pem.decode("ascii"))
            message += f"\nself-signed certificate SHA-256: {hashlib.sha256(der).hexdigest()}"
        print(message, flush=True)
        try:
            await _run_until_signalled(server)
        finally:
            if pool is not None:
                await pool.stop()

    try:
        asyncio.run(main())
    except OSError as exc:
        print(
            f"inference-metrics {args.command}: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import REGISTRY

    directory = MULTIPROCESS.directory(args)
    schemas = SCHEMAS.schemas(args)
    histograms = HISTOGRAMS.backend_arguments(args)
    # The merged metrics of every process writing to the directory (a pool monitor records
    # there too), else this process's own.
    registry = REGISTRY if directory is None else CollectorRegistry()
    pool = POOL.monitor(args)
    server = SERVE_SERVER.server(args, registry)
    # Only once every flag is known good: registering is the one step that changes something.
    if pool is not None:
        pool.recorder = Recorder(
            PrometheusBackend(registry, multiprocess_dir=directory, **histograms), schema=schemas
        )
    if directory is None:
        return _serve(args, server, "this process's default registry", pool)
    if pool is None:
        from .backends.multiproc import MultiprocessCollector
        from .schemas import combine

        specs = [metric.spec for metric in combine(schemas)]
        registry.register(MultiprocessCollector(directory, specs, **histograms))
    return _serve(args, server, f"the merged metrics of every process writing to {directory}", pool)


def _cmd_demo(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    if not args.rate > 0:
        raise OptionError(f"--rate must be > 0 requests per second, got {args.rate:g}")
    histograms = HISTOGRAMS.backend_arguments(args)
    tracer = HISTOGRAMS.tracer(args)
    registry = CollectorRegistry()
    server = DEMO_SERVER.server(args, registry)
    recorder = Recorder(PrometheusBackend(registry, **histograms), schema=SCHEMAS.schemas(args))
    stop = threading.Event()
    traffic = threading.Thread(
        target=run_traffic,
        args=(recorder, stop),
        kwargs={
            "rate": args.rate,
            "seed": args.seed,
            "traced": None if tracer is None else tracer.start_as_current_span,
        },
        name="inference-metrics-demo-traffic",
        daemon=True,
    )
    traffic.start()
    try:
        return _serve(args, server, "simulated traffic")
    finally:
        stop.set()
        traffic.join(5.0)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="inference-metrics",
        usage="%(prog)s COMMAND [options]",
        description=(
            "The Gateway API Inference Extension endpoint picker's metrics for Python: "
            "print the metrics reference, or serve a guarded /metrics."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # prog given: argparse would otherwise derive the commands' names from the usage line.
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", prog="inference-metrics"
    )

    docs = commands.add_parser(
        "docs",
        help="print the metrics reference (Markdown), or a schema's Grafana dashboard or "
        "Prometheus rules",
    )
    DOCS_SCHEMA.add_to(docs)
    docs.add_argument(
        "--format",
        choices=("markdown", "grafana", "rules"),
        default="markdown",
        help="markdown: the reference (default); grafana: the schema's dashboard JSON; rules: "
        "the schema's Prometheus recording and alerting rules (YAML)",
    )
    docs.add_argument(
        "--histograms",
        choices=("classic", "native"),
        default="classic",
        help="the histogram series the dashboard and rules read: classic (the _bucket series) "
        "or native (a backend with --histograms native or both, scraped by a Prometheus with "
        "native histograms on; see docs/native-histograms.md) (default: %(default)s)",
    )
    docs.set_defaults(func=_cmd_docs, parser=docs)

    serve = commands.add_parser(
        "serve",
        help="serve this process's default prometheus_client registry on a guarded /metrics",
    )
    SERVE_SERVER.add_to(serve)
    POOL.add_to(serve)
    SCHEMAS.add_to(serve)
    HISTOGRAMS.add_to(serve)
    MULTIPROCESS.add_to(serve)
    serve.set_defaults(func=_cmd_serve, parser=serve)

    demo = commands.add_parser("demo", help="serve /metrics with simulated inference traffic")
    DEMO_SERVER.add_to(demo)
    demo.add_argument(
        "--rate",
        type=float,
        default=20.0,
        metavar="PER_SECOND",
        help="simulated inference requests per second, > 0 (default: %(default)g)",
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed (reproducible traffic)")
    SCHEMAS.add_to(demo)
    HISTOGRAMS.add_to(demo)
    demo.set_defaults(func=_cmd_demo, parser=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        # Reported by the subcommand's parser, so the usage shown is the subcommand's.
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result: int = args.func(args)
    except OptionError as exc:  # raised while the command builds what its flags describe
        args.parser.error(str(exc))
    return result


if __name__ == "__main__":
    sys.exit(main())

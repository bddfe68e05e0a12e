"""The ``inference-metrics`` command: ``docs``, ``demo``, ``serve``."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence

from . import __version__
from .backends.prometheus import PrometheusBackend
from .recorder import Recorder
from .reference import render_reference
from .simulate import run_traffic

logger = logging.getLogger("inference_metrics.cli")


def _cmd_docs(args: argparse.Namespace) -> int:
    sys.stdout.write(render_reference())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    stop = threading.Event()
    traffic = threading.Thread(
        target=run_traffic,
        args=(recorder, stop),
        kwargs={"rate": args.rate, "seed": args.seed},
        name="inference-metrics-demo-traffic",
        daemon=True,
    )
    traffic.start()
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    print(
        f"inference-metrics demo: serving simulated traffic on http://{args.host}:{args.port}/metrics"
        " (Ctrl-C to stop)",
        flush=True,
    )
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.shutdown()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-metrics",
        description=(
            "The Gateway API Inference Extension endpoint picker's metrics for Python: "
            "print the metrics reference, or serve /metrics with simulated traffic."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    docs = commands.add_parser("docs", help="print the metrics reference (Markdown)")
    docs.set_defaults(func=_cmd_docs)

    demo = commands.add_parser("demo", help="serve /metrics with simulated inference traffic")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    demo.add_argument("--port", type=int, default=9090, help="port to listen on (9090)")
    demo.add_argument("--rate", type=float, default=20.0, help="simulated requests per second")
    demo.add_argument("--seed", type=int, default=None, help="random seed (reproducible traffic)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

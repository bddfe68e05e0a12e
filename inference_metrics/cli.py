"""The ``inference-metrics`` command: ``docs``, ``demo``, ``serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from .backends.prometheus import PrometheusBackend
from .recorder import Recorder
from .reference import render_reference
from .schemas import DEFAULT_SCHEMA, SCHEMAS, Schema, get_schema, resolve
from .simulate import run_traffic

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client.registry import Collector, CollectorRegistry

    from .pool import Discovery, PoolMonitor
    from .server import Authenticator, MetricsServer, ServerTLS

logger = logging.getLogger("inference_metrics.cli")


def _cmd_docs(args: argparse.Namespace) -> int:
    schema = None if args.schema is None else get_schema(args.schema)
    if args.format == "markdown":
        sys.stdout.write(render_reference(schema))
        return 0
    from .dashboards import render_dashboard, render_rules

    if schema is None:
        args.parser.error(f"--format {args.format} needs --schema NAME")  # exits
        return 2
    sys.stdout.write(render_dashboard(schema) if args.format == "grafana" else render_rules(schema))
    return 0


# ----------------------------------------------------------------------------- schemas


def _add_schema_option(parser: argparse.ArgumentParser, *, several: bool) -> None:
    names = ", ".join(SCHEMAS)
    if several:
        parser.add_argument(
            "--schema",
            action="append",
            choices=tuple(SCHEMAS),
            metavar="NAME",
            help=f"metric schema to record (repeatable, recorded together; default "
            f"{DEFAULT_SCHEMA.name}): {names}",
        )
    else:
        parser.add_argument(
            "--schema",
            choices=tuple(SCHEMAS),
            metavar="NAME",
            help=f"only this schema ({names}; default: every schema)",
        )


def _schemas_of(args: argparse.Namespace) -> tuple[Schema, ...]:
    """The schemas a serve/demo command records (argparse already refused unknown names)."""
    names: list[str] = args.schema or [DEFAULT_SCHEMA.name]
    try:
        return resolve(names)
    except ValueError as exc:
        args.parser.error(f"--schema: {exc}")  # exits
        raise


# ----------------------------------------------------------------------------- serve and demo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse contradictory or incomplete flags (argparse exits with status 2)."""
    if args.auth is None:
        if not _is_loopback(args.host):
            parser.error(
                f"--auth is required when listening on {args.host!r} (not a loopback address): "
                "choose --auth token, --auth kubernetes, or --auth none explicitly"
            )
        args.auth = "none"
    if args.auth == "token" and not args.token_file:
        parser.error("--auth token needs --token-file PATH (one token per line)")
    if args.token_file and args.auth != "token":
        parser.error("--token-file is only used with --auth token")
    kube_flags = [
        flag
        for flag, value in (
            ("--kube-api-server", args.kube_api_server),
            ("--kube-ca-file", args.kube_ca_file),
            ("--kube-token-file", args.kube_token_file),
            ("--kube-audience", args.kube_audience),
        )
        if value
    ]
    if kube_flags and args.auth != "kubernetes":
        parser.error(f"{', '.join(kube_flags)} only apply with --auth kubernetes")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_self_signed and args.tls_cert:
        parser.error("--tls-self-signed and --tls-cert/--tls-key are alternatives: choose one")
    if args.tls_hostname and not args.tls_self_signed:
        parser.error("--tls-hostname only applies with --tls-self-signed")
    if args.client_ca_file and not (args.tls_cert or args.tls_self_signed):
        parser.error("--client-ca-file needs TLS (--tls-cert/--tls-key or --tls-self-signed)")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    if not args.review_timeout > 0:
        parser.error(f"--review-timeout must be > 0 seconds, got {args.review_timeout:g}")
    for flag in ("token_cache_ttl", "allow_cache_ttl", "deny_cache_ttl"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must be >= 0 seconds")


def _build_auth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Authenticator:
    from .server import (
        ClientCertificateAuthenticator,
        KubernetesAuthenticator,
        KubernetesConfigError,
        NoAuth,
        TokenFileAuthenticator,
    )

    auth: Authenticator
    if args.auth == "token":
        try:
            auth = TokenFileAuthenticator(args.token_file)
        except OSError as exc:
            parser.error(f"--token-file {args.token_file}: {exc.strerror or exc}")
        except ValueError as exc:
            parser.error(str(exc))
    elif args.auth == "kubernetes":
        try:
            auth = KubernetesAuthenticator.in_cluster(
                api_server=args.kube_api_server,
                ca_file=args.kube_ca_file,
                token_file=args.kube_token_file,
                audiences=tuple(args.kube_audience or ()),
                timeout=args.review_timeout,
                token_ttl=args.token_cache_ttl,
                allow_ttl=args.allow_cache_ttl,
                deny_ttl=args.deny_cache_ttl,
            )
        except KubernetesConfigError as exc:
            parser.error(f"--auth kubernetes: {exc}")
    else:
        auth = NoAuth()
    if args.client_ca_file:
        auth = ClientCertificateAuthenticator(then=None if args.auth == "none" else auth)
    return auth


def _build_tls(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerTLS | None:
    from .server import ServerTLS, TLSConfigError

    try:
        if args.tls_self_signed:
            hostnames = args.tls_hostname or ["localhost", "127.0.0.1", "::1"]
            return ServerTLS.self_signed(hostnames, client_ca_file=args.client_ca_file)
        if args.tls_cert:
            return ServerTLS(args.tls_cert, args.tls_key, client_ca_file=args.client_ca_file)
    except TLSConfigError as exc:
        parser.error(str(exc))
    except ImportError as exc:
        parser.error(f"--tls-self-signed: {exc}")
    return None


def _describe_auth(args: argparse.Namespace) -> str:
    text = {
        "none": "no authentication",
        "token": f"bearer tokens from {args.token_file}",
        "kubernetes": "Kubernetes TokenReview + SubjectAccessReview",
    }[args.auth]
    if args.client_ca_file:
        text = f"client certificates from {args.client_ca_file}" + (
            f" and {text}" if args.auth != "none" else ""
        )
    return text


def _build_server(
    args: argparse.Namespace, parser: argparse.ArgumentParser, registry: Collector
) -> MetricsServer:
    from .server import MetricsServer

    _check_flags(args, parser)
    auth = _build_auth(args, parser)
    tls = _build_tls(args, parser)
    return MetricsServer(auth=auth, registry=registry, host=args.host, port=args.port, tls=tls)


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
        message += f" ({_describe_auth(args)}); Ctrl-C to stop"
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


def _multiprocess_dir(args: argparse.Namespace) -> Path | None:
    """The directory of --multiprocess-dir (or the environment variable), checked; None when
    neither names one. A bad directory exits 2."""
    import os

    from .backends import multiproc

    directory = args.multiprocess_dir or os.environ.get(multiproc.ENV_VAR) or None
    if directory is None:
        return None
    parser: argparse.ArgumentParser = args.parser
    try:
        return multiproc.check_directory(directory, "--multiprocess-dir")
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))


def _cmd_serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import REGISTRY

    directory = _multiprocess_dir(args)
    if directory is not None:
        # The merged metrics of every process writing there; a pool monitor records there too.
        from .backends.multiproc import MultiprocessCollector
        from .schemas import combine

        merged = CollectorRegistry()
        pool = _build_pool(args, args.parser, merged, multiprocess_dir=directory)
        if pool is None:
            specs = [metric.spec for metric in combine(_schemas_of(args))]
            merged.register(MultiprocessCollector(directory, specs))
        server = _build_server(args, args.parser, merged)
        what = f"the merged metrics of every process writing to {directory}"
        return _serve(args, server, what, pool)
    pool = _build_pool(args, args.parser, REGISTRY)
    server = _build_server(args, args.parser, REGISTRY)
    return _serve(args, server, "this process's default registry", pool)


# ----------------------------------------------------------------------------- serve: pool flags


def _add_pool_options(parser: argparse.ArgumentParser) -> None:
    from .pool import (
        DEFAULT_AGGREGATE_INTERVAL,
        DEFAULT_ENGINE,
        DEFAULT_POLL_INTERVAL,
        DEFAULT_STALENESS,
        PROFILES,
    )

    pool = parser.add_argument_group(
        "pool monitor (sets inference_pool_* from the model servers' own /metrics; "
        "needs the 'pool' extra)"
    )
    pool.add_argument("--pool-name", metavar="NAME", help="the pool's name (the 'name' label)")
    pool.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="[POD=]URL",
        help="a model server's metrics URL, optionally named (repeatable)",
    )
    pool.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        choices=sorted(PROFILES),
        help=f"the model servers' engine ({DEFAULT_ENGINE}); Kubernetes pods may say their own "
        "with the label llm-d.ai/engine-type",
    )
    pool.add_argument(
        "--dns", metavar="NAME:PORT", help="a headless Service's DNS name, re-resolved"
    )
    pool.add_argument(
        "--metrics-scheme",
        choices=("http", "https"),
        default="http",
        help="scheme of discovered endpoints (http)",
    )
    pool.add_argument(
        "--metrics-path", default="/metrics", metavar="PATH", help="of discovered endpoints"
    )
    for flag, metavar, text in (
        ("--kube-namespace", "NS", "discover in this namespace"),
        ("--kube-service", "NAME", "…the EndpointSlices of this Service"),
        ("--kube-selector", "SELECTOR", "…or the pods with these labels"),
        ("--kube-port", "PORT", "metrics port: a number or a port name"),
        ("--discovery-api-server", "URL", "Kubernetes API server (in-cluster)"),
        ("--discovery-ca-file", "PATH", "its CA (the service account's)"),
        ("--discovery-token-file", "PATH", "token for it (the service account's)"),
        ("--queue-metric", "SELECTOR", 'queue: name{label="value"}'),
        ("--running-metric", "SELECTOR", 'running requests: name{label="value"}'),
        ("--kv-cache-metric", "SELECTOR", 'KV-cache utilisation: name{label="value"}'),
        ("--pool-ca-file", "PATH", "CA of https:// model servers"),
        ("--pool-cert-file", "PATH", "client certificate for them"),
        ("--pool-key-file", "PATH", "its key"),
        ("--pool-token-file", "PATH", "bearer token sent to them"),
    ):
        pool.add_argument(flag, metavar=metavar, help=text)
    pool.add_argument(
        "--pool-insecure-skip-verify",
        action="store_true",
        help="accept any certificate from https:// model servers",
    )
    for flag, default, text in (
        ("--poll-interval", DEFAULT_POLL_INTERVAL, "between two polls of one endpoint"),
        ("--aggregate-interval", DEFAULT_AGGREGATE_INTERVAL, "between two settings of the gauges"),
        ("--staleness", DEFAULT_STALENESS, "an endpoint older than this is not ready"),
    ):
        pool.add_argument(
            flag, type=float, default=default, metavar="SECONDS", help=f"{text} ({default:g})"
        )


def _pool_discovery(args: argparse.Namespace) -> Discovery:
    from .pool import DNSDiscovery, Endpoint, KubernetesDiscovery, StaticDiscovery

    chosen = [
        flag
        for flag, value in (
            ("--endpoint", args.endpoint),
            ("--dns", args.dns),
            ("--kube-service/--kube-selector", args.kube_service or args.kube_selector),
        )
        if value
    ]
    if len(chosen) != 1:
        raise ValueError(
            f"--pool-name needs exactly one of --endpoint, --dns, --kube-service or "
            f"--kube-selector, got {', '.join(chosen) or 'none'}"
        )
    common = {"engine": args.engine, "scheme": args.metrics_scheme, "path": args.metrics_path}
    if args.endpoint:
        return StaticDiscovery(Endpoint.parse(spec, engine=args.engine) for spec in args.endpoint)
    if args.dns:
        return DNSDiscovery.from_spec(args.dns, **common)
    from .server import KubernetesConfig

    if not args.kube_namespace:
        raise ValueError("--kube-service/--kube-selector need --kube-namespace")
    port: int | str | None = args.kube_port
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    config = KubernetesConfig.in_cluster(
        api_server=args.discovery_api_server,
        ca_file=args.discovery_ca_file,
        token_file=args.discovery_token_file,
    )
    return KubernetesDiscovery(
        config,
        args.kube_namespace,
        service=args.kube_service,
        selector=args.kube_selector,
        port=port,
        **common,
    )


def _build_pool(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    registry: CollectorRegistry,
    *,
    multiprocess_dir: Path | None = None,
) -> PoolMonitor | None:
    """The pool monitor the flags ask for (None without --pool-name); exits 2 on bad flags."""
    pool_flags = [
        f"--{name.replace('_', '-')}"
        for name in ("endpoint", "dns", "kube_service", "kube_selector")
        if getattr(args, name)
    ]
    if not args.pool_name:
        if pool_flags:
            parser.error(f"{', '.join(pool_flags)} need --pool-name NAME")
        return None
    try:
        from .pool import PROFILES, ClientTLS, EngineProfile, PoolMonitor

        profiles = dict(PROFILES)
        overrides = {
            "queue": args.queue_metric,
            "running": args.running_metric,
            "kv_cache": args.kv_cache_metric,
        }
        if any(overrides.values()):
            profiles[args.engine] = EngineProfile.custom(
                args.engine, base=PROFILES[args.engine], **overrides
            )
        tls = ClientTLS(
            ca_file=args.pool_ca_file,
            cert_file=args.pool_cert_file,
            key_file=args.pool_key_file,
            insecure_skip_verify=args.pool_insecure_skip_verify,
        )
        monitor = PoolMonitor(
            args.pool_name,
            _pool_discovery(args),
            profiles=profiles,
            poll_interval=args.poll_interval,
            aggregate_interval=args.aggregate_interval,
            staleness=args.staleness,
            tls=tls,
            bearer_token_file=args.pool_token_file,
        )
    except (TypeError, ValueError) as exc:  # KubernetesConfigError is a ValueError
        parser.error(str(exc))
    # Only once every flag is known good: registering is the one step that changes something.
    monitor.recorder = Recorder(
        PrometheusBackend(registry, multiprocess_dir=multiprocess_dir), schema=_schemas_of(args)
    )
    registry.register(monitor.collector())
    return monitor


def _cmd_demo(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    if not args.rate > 0:
        args.parser.error(f"--rate must be > 0 requests per second, got {args.rate:g}")
    registry = CollectorRegistry()
    server = _build_server(args, args.parser, registry)
    recorder = Recorder(PrometheusBackend(registry), schema=_schemas_of(args))
    stop = threading.Event()
    traffic = threading.Thread(
        target=run_traffic,
        args=(recorder, stop),
        kwargs={"rate": args.rate, "seed": args.seed},
        name="inference-metrics-demo-traffic",
        daemon=True,
    )
    traffic.start()
    try:
        return _serve(args, server, "simulated traffic")
    finally:
        stop.set()
        traffic.join(5.0)


def _add_server_options(parser: argparse.ArgumentParser, *, default_host: str) -> None:
    parser.add_argument(
        "--host", default=default_host, help=f"address to listen on ({default_host})"
    )
    parser.add_argument("--port", type=int, default=9090, help="port to listen on (9090)")
    parser.add_argument(
        "--auth",
        choices=("none", "token", "kubernetes"),
        default=None,
        help="who may read /metrics: anyone, a bearer token from --token-file, or a Kubernetes "
        "identity allowed 'get' on the non-resource URL /metrics (default: none on a loopback "
        "address; required otherwise)",
    )
    parser.add_argument(
        "--token-file", metavar="PATH", help="bearer tokens, one per line (re-read on change)"
    )
    kube = parser.add_argument_group("--auth kubernetes (defaults: the pod's service account)")
    kube.add_argument("--kube-api-server", metavar="URL", help="API server URL (in-cluster)")
    kube.add_argument("--kube-ca-file", metavar="PATH", help="CA bundle of the API server")
    kube.add_argument("--kube-token-file", metavar="PATH", help="this server's own bearer token")
    kube.add_argument(
        "--kube-audience",
        metavar="AUDIENCE",
        action="append",
        help="audience a token must be valid for (repeatable; default: the API server's)",
    )
    kube.add_argument(
        "--review-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="bound on one authentication decision; 503 beyond it (5)",
    )
    kube.add_argument(
        "--token-cache-ttl",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a TokenReview's answer (authenticated or not) is reused; 0: never "
        "(default: %(default)g)",
    )
    kube.add_argument(
        "--allow-cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long an allowing SubjectAccessReview is reused; 0: never (default: %(default)g)",
    )
    kube.add_argument(
        "--deny-cache-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a refusing SubjectAccessReview is reused; 0: never (default: %(default)g)",
    )
    tls = parser.add_argument_group("TLS (default: plain HTTP)")
    tls.add_argument("--tls-cert", metavar="PATH", help="PEM certificate chain (reloaded)")
    tls.add_argument("--tls-key", metavar="PATH", help="PEM private key (reloaded)")
    tls.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="generate a self-signed certificate at start-up (needs the 'tls' extra)",
    )
    tls.add_argument(
        "--tls-hostname",
        action="append",
        metavar="NAME",
        help="name or IP for the self-signed certificate (repeatable; localhost, 127.0.0.1, ::1)",
    )
    tls.add_argument(
        "--client-ca-file",
        metavar="PATH",
        help="require client certificates signed by this CA for /metrics (mTLS)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-metrics",
        description=(
            "The Gateway API Inference Extension endpoint picker's metrics for Python: "
            "print the metrics reference, or serve a guarded /metrics."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    docs = commands.add_parser(
        "docs",
        help="print the metrics reference (Markdown), or a schema's Grafana dashboard or "
        "Prometheus rules",
    )
    _add_schema_option(docs, several=False)
    docs.add_argument(
        "--format",
        choices=("markdown", "grafana", "rules"),
        default="markdown",
        help="markdown: the reference (default); grafana: the schema's dashboard JSON; rules: "
        "the schema's Prometheus recording and alerting rules (YAML)",
    )
    docs.set_defaults(func=_cmd_docs, parser=docs)

    serve = commands.add_parser(
        "serve",
        help="serve this process's default prometheus_client registry on a guarded /metrics",
    )
    _add_server_options(serve, default_host="0.0.0.0")
    _add_pool_options(serve)
    _add_schema_option(serve, several=True)
    serve.add_argument(
        "--multiprocess-dir",
        metavar="DIR",
        help="serve the merged metrics of every process recording into DIR (see "
        "docs/multiprocess.md; default: $INFERENCE_METRICS_MULTIPROC_DIR, else this process)",
    )
    serve.set_defaults(func=_cmd_serve, parser=serve)

    demo = commands.add_parser("demo", help="serve /metrics with simulated inference traffic")
    _add_server_options(demo, default_host="127.0.0.1")
    demo.add_argument(
        "--rate",
        type=float,
        default=20.0,
        metavar="PER_SECOND",
        help="simulated inference requests per second, > 0 (default: %(default)g)",
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed (reproducible traffic)")
    _add_schema_option(demo, several=True)
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
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

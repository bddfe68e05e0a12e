"""The pool monitor's flags: which model servers to poll, how to reach them, how often.

``PoolOptions().add_to(parser)`` adds the pool group (``--pool-name``, one way of finding the
endpoints, engine and selectors, TLS and token to the model servers, intervals);
:meth:`PoolOptions.monitor` turns the parsed arguments into a
:class:`~inference_metrics.pool.PoolMonitor` (no recorder, nothing registered: the caller attaches
both once every flag is known good), or None when the flags ask for no pool, or raises
:class:`~.parsing.OptionError` naming the flags. Shared by ``inference-metrics serve`` and
``examples/ext_proc/server.py`` (where the endpoint flag is ``--pool-endpoint`` and the pool has
a default name).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..pool import (
    DEFAULT_AGGREGATE_INTERVAL,
    DEFAULT_ENGINE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STALENESS,
    PROFILES,
    ClientTLS,
    Discovery,
    DNSDiscovery,
    Endpoint,
    EngineProfile,
    KubernetesDiscovery,
    PoolMonitor,
    StaticDiscovery,
    require_pool_extra,
)
from ..server import KubernetesConfig
from .parsing import OptionError, flag_errors

__all__ = ["PoolOptions"]

#: The profile fields the selector flags replace, and the flags.
_SELECTOR_FLAGS = {
    "queue": "--queue-metric",
    "running": "--running-metric",
    "kv_cache": "--kv-cache-metric",
}
_MONITOR_PARAMETERS = {
    "poll_interval": "--poll-interval",
    "aggregate_interval": "--aggregate-interval",
    "staleness": "--staleness",
    "bearer_token_file": "--pool-token-file",
    "ca_file": "--pool-ca-file",
    "cert_file": "--pool-cert-file",
    "key_file": "--pool-key-file",
}


@dataclass(frozen=True)
class PoolOptions:
    """The pool flags of one command. ``endpoint_flag``: the name of the static endpoint flag
    (its values are ``args.endpoint`` whatever the name). ``default_pool_name``: None, and
    ``--pool-name`` turns the monitor on (the other flags need it); a name, and any way of
    finding endpoints turns it on under that name unless ``--pool-name`` says another."""

    endpoint_flag: str = "--endpoint"
    default_pool_name: str | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        pool = parser.add_argument_group(
            "pool monitor (sets inference_pool_* from the model servers' own /metrics; "
            "needs the 'pool' extra)"
        )
        default = "" if self.default_pool_name is None else f" ({self.default_pool_name})"
        pool.add_argument(
            "--pool-name",
            default=self.default_pool_name,
            metavar="NAME",
            help=f"the pool's name (the 'name' label){default}",
        )
        pool.add_argument(
            self.endpoint_flag,
            dest="endpoint",
            action="append",
            default=[],
            metavar="[POD=]URL",
            help="a model server's metrics URL, optionally named (repeatable)",
        )
        pool.add_argument(
            "--engine",
            default=DEFAULT_ENGINE,
            choices=sorted(PROFILES),
            help=f"the model servers' engine ({DEFAULT_ENGINE}); Kubernetes pods may say their "
            "own with the label llm-d.ai/engine-type",
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
        for flag, seconds, text in (
            ("--poll-interval", DEFAULT_POLL_INTERVAL, "between two polls of one endpoint"),
            (
                "--aggregate-interval",
                DEFAULT_AGGREGATE_INTERVAL,
                "between two settings of the gauges",
            ),
            ("--staleness", DEFAULT_STALENESS, "an endpoint older than this is not ready"),
        ):
            pool.add_argument(
                flag, type=float, default=seconds, metavar="SECONDS", help=f"{text} ({seconds:g})"
            )

    # --- parsed arguments to a monitor -------------------------------------------------------

    def monitor(self, args: argparse.Namespace) -> PoolMonitor | None:
        """The monitor the flags ask for (no recorder; nothing registered), None for none."""
        chosen = [
            flag
            for flag, value in (
                (self.endpoint_flag, args.endpoint),
                ("--dns", args.dns),
                ("--kube-service", args.kube_service),
                ("--kube-selector", args.kube_selector),
            )
            if value
        ]
        if not args.pool_name or (self.default_pool_name is not None and not chosen):
            if chosen:
                verb = "needs" if len(chosen) == 1 else "need"
                raise OptionError(f"{' and '.join(chosen)} {verb} --pool-name NAME")
            return None
        # What turned the pool on: the name, or (with a default name) a way of finding it.
        trigger = "--pool-name" if self.default_pool_name is None else chosen[0]
        try:
            require_pool_extra()
        except ImportError as exc:
            raise OptionError(f"{trigger}: {exc}") from None
        if len(chosen) != 1:
            pool = "--pool-name" if self.default_pool_name is None else "the pool"
            choices = f"{self.endpoint_flag}, --dns, --kube-service or --kube-selector"
            raise OptionError(
                f"{pool} needs exactly one of {choices}, got {', '.join(chosen) or 'none'}"
            )
        if bool(args.pool_cert_file) != bool(args.pool_key_file):
            raise OptionError("--pool-cert-file and --pool-key-file go together")
        profiles = dict(PROFILES)
        selectors = {
            "queue": args.queue_metric,
            "running": args.running_metric,
            "kv_cache": args.kv_cache_metric,
        }
        if any(selectors.values()):
            with flag_errors("--engine", _SELECTOR_FLAGS):
                profiles[args.engine] = EngineProfile.custom(
                    args.engine, base=PROFILES[args.engine], **selectors
                )
        discovery = self._discovery(args)
        tls = ClientTLS(
            ca_file=args.pool_ca_file,
            cert_file=args.pool_cert_file,
            key_file=args.pool_key_file,
            insecure_skip_verify=args.pool_insecure_skip_verify,
        )
        with flag_errors("--pool-name", _MONITOR_PARAMETERS):
            return PoolMonitor(
                args.pool_name,
                discovery,
                profiles=profiles,
                poll_interval=args.poll_interval,
                aggregate_interval=args.aggregate_interval,
                staleness=args.staleness,
                tls=tls,
                bearer_token_file=args.pool_token_file,
            )

    def _discovery(self, args: argparse.Namespace) -> Discovery:
        """How the endpoints are found: the one way :meth:`monitor` checked was given."""
        common = {"engine": args.engine, "scheme": args.metrics_scheme, "path": args.metrics_path}
        if args.endpoint:
            with flag_errors(self.endpoint_flag, {"url": self.endpoint_flag}):
                return StaticDiscovery(
                    Endpoint.parse(spec, engine=args.engine) for spec in args.endpoint
                )
        if args.dns:
            with flag_errors("--dns", {"path": "--metrics-path"}):
                return DNSDiscovery.from_spec(args.dns, **common)
        flag = "--kube-service" if args.kube_service else "--kube-selector"
        if not args.kube_namespace:
            raise OptionError(f"{flag} needs --kube-namespace NS")
        if args.kube_selector and not args.kube_port:
            raise OptionError("--kube-selector needs --kube-port (pods have no single port)")
        port: int | str | None = args.kube_port
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        with flag_errors(flag, {"api_server": "--discovery-api-server"}):
            config = KubernetesConfig.in_cluster(
                api_server=args.discovery_api_server,
                ca_file=args.discovery_ca_file,
                token_file=args.discovery_token_file,
            )
        parameters = {
            "namespace": "--kube-namespace",
            "port": "--kube-port",
            "path": "--metrics-path",
        }
        with flag_errors(flag, parameters):
            return KubernetesDiscovery(
                config,
                args.kube_namespace,
                service=args.kube_service,
                selector=args.kube_selector,
                port=port,
                **common,
            )

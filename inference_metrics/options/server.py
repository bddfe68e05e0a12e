"""The exposition server's flags: where it listens, who may read ``/metrics``, TLS.

``ServerOptions().add_to(parser)`` adds ``--host``, ``--port``, ``--auth`` with its token and
Kubernetes flags, and the TLS flags; :meth:`ServerOptions.config` turns the parsed arguments into
a :class:`~inference_metrics.server.ServerConfig` (the authenticator and the TLS configuration
made and checked), or raises :class:`~.parsing.OptionError` naming the flags. Shared by
``inference-metrics serve|demo`` and ``examples/ext_proc/server.py`` (which calls its port flag
``--metrics-port``).
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass

from prometheus_client.registry import Collector

from ..server import (
    DEFAULT_PORT,
    Authenticator,
    ClientCertificateAuthenticator,
    KubernetesAuthenticator,
    MetricsServer,
    NoAuth,
    ServerConfig,
    ServerTLS,
    TokenFileAuthenticator,
)
from .parsing import OptionError, flag_errors

__all__ = ["ServerOptions"]

_AUTH_DESCRIPTIONS = {
    "none": "no authentication",
    "token": "bearer tokens from {token_file}",
    "kubernetes": "Kubernetes TokenReview + SubjectAccessReview",
}
_KUBE_FLAGS = (
    ("--kube-api-server", "kube_api_server"),
    ("--kube-ca-file", "kube_ca_file"),
    ("--kube-token-file", "kube_token_file"),
    ("--kube-audience", "kube_audience"),
)
_CACHE_TTL_FLAGS = (
    ("--token-cache-ttl", "token_cache_ttl"),
    ("--allow-cache-ttl", "allow_cache_ttl"),
    ("--deny-cache-ttl", "deny_cache_ttl"),
)


@dataclass(frozen=True)
class ServerOptions:
    """The server's flags for one command. ``default_host``: what ``--host`` defaults to;
    ``port_flag``: the name of the port flag (its value is ``args.port`` whatever the name)."""

    default_host: str = "0.0.0.0"
    port_flag: str = "--port"
    default_port: int = DEFAULT_PORT

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--host", default=self.default_host, help=f"address to listen on ({self.default_host})"
        )
        parser.add_argument(
            self.port_flag,
            dest="port",
            type=int,
            default=self.default_port,
            help=f"port to serve /metrics on ({self.default_port})",
        )
        parser.add_argument(
            "--auth",
            choices=("none", "token", "kubernetes"),
            default=None,
            help="who may read /metrics: anyone, a bearer token from --token-file, or a "
            "Kubernetes identity allowed 'get' on the non-resource URL /metrics (default: none on "
            "a loopback address; required otherwise)",
        )
        parser.add_argument(
            "--token-file", metavar="PATH", help="bearer tokens, one per line (re-read on change)"
        )
        kube = parser.add_argument_group("--auth kubernetes (defaults: the pod's service account)")
        kube.add_argument("--kube-api-server", metavar="URL", help="API server URL (in-cluster)")
        kube.add_argument("--kube-ca-file", metavar="PATH", help="CA bundle of the API server")
        kube.add_argument(
            "--kube-token-file", metavar="PATH", help="this server's own bearer token"
        )
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
        for flag, default, what in (
            ("--token-cache-ttl", 60.0, "a TokenReview's answer (authenticated or not)"),
            ("--allow-cache-ttl", 300.0, "an allowing SubjectAccessReview"),
            ("--deny-cache-ttl", 30.0, "a refusing SubjectAccessReview"),
        ):
            kube.add_argument(
                flag,
                type=float,
                default=default,
                metavar="SECONDS",
                help=f"how long {what} is reused; 0: never (default: %(default)g)",
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
            help="name or IP for the self-signed certificate (repeatable; localhost, 127.0.0.1, "
            "::1)",
        )
        tls.add_argument(
            "--client-ca-file",
            metavar="PATH",
            help="require client certificates signed by this CA for /metrics (mTLS)",
        )

    # --- parsed arguments to a configuration -------------------------------------------------

    def config(self, args: argparse.Namespace, registry: Collector) -> ServerConfig:
        """The server configuration the flags describe, serving ``registry``; OptionError for
        contradictory, incomplete or unusable flags (files are read here)."""
        self.check(args)
        return ServerConfig(
            auth=self.authenticator(args),
            registry=registry,
            host=args.host,
            port=args.port,
            tls=self.tls(args),
        )

    def server(self, args: argparse.Namespace, registry: Collector) -> MetricsServer:
        """A :class:`MetricsServer` for :meth:`config` (not started)."""
        return MetricsServer.from_config(self.config(args, registry))

    def check(self, args: argparse.Namespace) -> None:
        """Refuse contradictory or incomplete flags (nothing is read or made)."""
        auth = auth_choice(args)
        if auth == "token" and not args.token_file:
            raise OptionError("--auth token needs --token-file PATH (one token per line)")
        if args.token_file and auth != "token":
            raise OptionError("--token-file is only used with --auth token")
        kube_flags = [flag for flag, name in _KUBE_FLAGS if getattr(args, name)]
        if kube_flags and auth != "kubernetes":
            verb = "applies" if len(kube_flags) == 1 else "apply"
            raise OptionError(f"{_listed(kube_flags)} only {verb} with --auth kubernetes")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise OptionError("--tls-cert and --tls-key go together")
        if args.tls_self_signed and args.tls_cert:
            raise OptionError(
                "--tls-self-signed and --tls-cert/--tls-key are alternatives: choose one"
            )
        if args.tls_hostname and not args.tls_self_signed:
            raise OptionError("--tls-hostname only applies with --tls-self-signed")
        if args.client_ca_file and not (args.tls_cert or args.tls_self_signed):
            raise OptionError(
                "--client-ca-file needs TLS (--tls-cert/--tls-key or --tls-self-signed)"
            )
        if not 0 <= args.port <= 65535:
            raise OptionError(f"{self.port_flag} must be in 0..65535, got {args.port}")
        if not args.review_timeout > 0:
            raise OptionError(f"--review-timeout must be > 0 seconds, got {args.review_timeout:g}")
        for flag, name in _CACHE_TTL_FLAGS:
            if getattr(args, name) < 0:
                raise OptionError(f"{flag} must be >= 0 seconds, got {getattr(args, name):g}")

    @staticmethod
    def authenticator(args: argparse.Namespace) -> Authenticator:
        """The authenticator of checked flags (token files and credentials are read here)."""
        auth: Authenticator
        choice = auth_choice(args)
        if choice == "token":
            try:
                with flag_errors("--token-file"):
                    auth = TokenFileAuthenticator(args.token_file)
            except OSError as exc:
                raise OptionError(
                    f"--token-file {args.token_file}: {exc.strerror or exc}"
                ) from None
        elif choice == "kubernetes":
            parameters = {
                "api_server": "--kube-api-server",
                "timeout": "--review-timeout",
                "token_ttl": "--token-cache-ttl",
                "allow_ttl": "--allow-cache-ttl",
                "deny_ttl": "--deny-cache-ttl",
            }
            with flag_errors("--auth kubernetes", parameters):
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
        else:
            auth = NoAuth()
        if args.client_ca_file:
            auth = ClientCertificateAuthenticator(then=None if choice == "none" else auth)
        return auth

    @staticmethod
    def tls(args: argparse.Namespace) -> ServerTLS | None:
        """The TLS configuration of checked flags (None: plain HTTP); files are loaded here."""
        if args.tls_self_signed:
            hostnames = args.tls_hostname or ["localhost", "127.0.0.1", "::1"]
            try:
                with flag_errors("--tls-self-signed", {"hostnames": "--tls-hostname"}):
                    return ServerTLS.self_signed(hostnames, client_ca_file=args.client_ca_file)
            except ImportError as exc:
                raise OptionError(f"--tls-self-signed: {exc}") from None
        if args.tls_cert:
            flags = "--tls-cert/--tls-key" + ("/--client-ca-file" if args.client_ca_file else "")
            with flag_errors(flags):
                return ServerTLS(args.tls_cert, args.tls_key, client_ca_file=args.client_ca_file)
        return None

    @staticmethod
    def describe_auth(args: argparse.Namespace) -> str:
        """Who may read ``/metrics``, in words, for the start-up line."""
        choice = auth_choice(args)
        text = _AUTH_DESCRIPTIONS[choice].format(token_file=args.token_file)
        if args.client_ca_file:
            text = f"client certificates from {args.client_ca_file}" + (
                f" and {text}" if choice != "none" else ""
            )
        return text


def auth_choice(args: argparse.Namespace) -> str:
    """``--auth``, or ``none`` when it was not given and the host is a loopback address."""
    if args.auth is not None:
        return str(args.auth)
    if not _is_loopback(args.host):
        raise OptionError(
            f"--auth is required when listening on {args.host!r} (not a loopback address): "
            "choose --auth token, --auth kubernetes, or --auth none explicitly"
        )
    return "none"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(flags: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"

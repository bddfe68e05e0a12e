"""Write the example Envoy configuration with other ports.

``envoy.yaml`` next to this script listens on 8080, asks the picker on 9002, forwards to the
model server on 8000 and serves Envoy's admin on 9901. To run the example on other ports::

    python examples/ext_proc/envoy_config.py --listener-port 18080 --picker-port 19002 \\
        --upstream-port 18000 --admin-port 19901 > /tmp/envoy.yaml
    python examples/ext_proc/server.py --grpc-port 19002 --metrics-port 19090
    envoy -c /tmp/envoy.yaml --concurrency 1

Every port is replaced where it stands in ``envoy.yaml`` (and nowhere else); the rest of the
configuration is the shipped one, byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "envoy.yaml"
#: The ports in envoy.yaml, by role.
DEFAULT_PORTS = {"admin": 9901, "listener": 8080, "picker": 9002, "upstream": 8000}


def render(ports: dict[str, int], template: str | None = None) -> str:
    """``envoy.yaml`` (or ``template``) with the roles in ``ports`` moved to those ports.

    Raises ValueError naming a role that is unknown, a port outside 1..65535, or a template that
    does not hold the role's default port exactly once.
    """
    text = TEMPLATE.read_text() if template is None else template
    for role, port in ports.items():
        if role not in DEFAULT_PORTS:
            raise ValueError(f"unknown port role {role!r} (one of {sorted(DEFAULT_PORTS)})")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"{role} port must be in 1..65535, got {port!r}")
        old = f"port_value: {DEFAULT_PORTS[role]} "
        if text.count(old) != 1:
            raise ValueError(f"the template holds {old!r} {text.count(old)} times, not once")
        text = text.replace(old, f"port_value: {port} ")
    return text


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is in 1..65535, got {port}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for role, default in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{role}-port", type=_port, default=default, help=f"(default: {default})"
        )
    args = parser.parse_args(argv)
    sys.stdout.write(render({role: getattr(args, f"{role}_port") for role in DEFAULT_PORTS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A crowd of idle, slow and churning clients against a server, run in its own process.

``python -m tests.flood PORT [--idle N] [--half N] [--churn N]`` keeps, until it is terminated:

* ``--idle`` connections that each send one unauthenticated ``/healthz`` request, read the answer
  and then stay idle on keep-alive;
* ``--half`` connections that each send half a request head and never the rest;
* a loop that opens ``--churn`` connections at once, resets them all, and starts over.

With ``--persistent``, idle and half connections closed by the server are opened again at once
(a harsher crowd than the connection-policy target; docs/exposition-server.md reports both).

It prints ``ready`` once every idle and half slot has connected once. Connections are reset
(``SO_LINGER`` 0) rather than closed, so no TIME_WAIT piles up on either side. Not a test: the
connection-policy test runs it next to the scrapes it must not keep out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n"
HALF = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Never-Ends: "
_LINGER_ZERO = struct.pack("ii", 1, 0)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    return reader, writer


def _reset(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def _slot(port: int, connected: asyncio.Event, persistent: bool, *, idle: bool) -> None:
    """An idle keep-alive connection (``idle``) or a half-sent request, until the server closes
    it; then again at once when ``persistent``."""
    while True:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            reader, writer = await _connect(port)
            try:
                writer.write(HEALTHZ if idle else HALF)
                if idle:
                    await reader.readuntil(b"ok\n")
                connected.set()
                while await reader.read(4096):  # until the server closes it
                    pass
            finally:
                _reset(writer)
        connected.set()
        if not persistent:
            return
        await asyncio.sleep(0)


async def _churn(port: int, count: int) -> None:
    while True:
        opened = await asyncio.gather(
            *(_connect(port) for _ in range(count)), return_exceptions=True
        )
        for item in opened:
            if not isinstance(item, BaseException):
                _reset(item[1])
        await asyncio.sleep(0)


async def main(port: int, idle: int, half: int, churn: int, persistent: bool) -> None:
    slots: list[asyncio.Event] = []
    tasks = []
    for _ in range(idle):
        slots.append(asyncio.Event())
        tasks.append(asyncio.create_task(_slot(port, slots[-1], persistent, idle=True)))
    for _ in range(half):
        slots.append(asyncio.Event())
        tasks.append(asyncio.create_task(_slot(port, slots[-1], persistent, idle=False)))
    await asyncio.gather(*(slot.wait() for slot in slots))
    if churn:
        tasks.append(asyncio.create_task(_churn(port, churn)))
    print("ready", flush=True)
    await asyncio.Event().wait()  # until terminated


@contextlib.contextmanager
def crowd(port: int, *, persistent: bool = False) -> Iterator[None]:
    """This module's crowd against ``port``, in its own process, from ``ready`` until the end of
    the ``with`` block."""
    from .prometheus_harness import stop_process

    args = [sys.executable, "-m", "tests.flood", str(port)]
    if persistent:
        args.append("--persistent")
    flood = subprocess.Popen(
        args, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE
    )
    try:
        assert flood.stdout is not None
        line = flood.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the crowd did not start: {line!r}")
        yield
    finally:
        stop_process(flood)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--half", type=int, default=300)
    parser.add_argument("--churn", type=int, default=300)
    parser.add_argument("--persistent", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, args.idle, args.half, args.churn, args.persistent))
    sys.exit(0)

"""A real uvicorn server in a thread of the test process, on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

STARTUP_TIMEOUT = 10.0


@contextlib.contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields the base URL.

    ``config``: more ``uvicorn.Config`` arguments (the lifespan protocol is off unless given).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # loopback only; the kernel picks a free port
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, **{"log_level": "warning", "lifespan": "off", **config})
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True

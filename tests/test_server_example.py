"""examples/exposition_server.py runs as documented: guarded by a token file, stops on SIGTERM."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .prometheus_harness import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "exposition_server.py"
TOKEN = "example-token-3b7d"


def status(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_example_serves_a_guarded_metrics_endpoint(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--rate",
            "200",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert status(port, {})[0] == 401
        while True:
            code, body = status(port, {"Authorization": f"Bearer {TOKEN}"})
            assert code == 200
            if b"inference_model_request_duration_seconds_count" in body:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert b"python_info" in body  # the default REGISTRY
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0, out
    assert f"serving http://127.0.0.1:{port}/metrics" in out

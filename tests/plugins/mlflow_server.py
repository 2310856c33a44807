"""A real MLflow tracking server for the test session (no mocks).

One ``mlflow server`` (sqlite backend, proxied artifact store, one worker, no job runner — ~6 s to
start, ~0.5 GB) is started the first time a test asks for ``mlflow_server`` and killed, with its
whole process group, at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 90.0  # ~6 s on an idle machine, 20-30 s seen on 2 busy cores


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)  # the server forks workers: end the whole group it leads
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI (``http://127.0.0.1:<port>``) of a running MLflow server, shared by the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    exe = Path(sys.executable).parent / "mlflow"
    if not exe.exists():
        pytest.fail(f"mlflow executable not found next to {sys.executable}")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [str(exe), "server",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           # artifacts go through the server (mlflow-artifacts:/), as with a remote server
           "--default-artifact-root", "mlflow-artifacts:/",
           "--artifacts-destination", str(root / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "never became healthy"
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"mlflow server {why} within {START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.25)
        yield uri
    finally:
        _stop(proc)


def forward_request(handler: Any, host: str, port: int, body: bytes, timeout: float = 30) -> None:
    """Relay ``handler``'s request (already read ``body``) to ``host:port`` and its response back: the core of the
    fault-injecting proxies the tracking tests put in front of the real MLflow server."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in {"host", "connection"}}
    conn.request(handler.command, handler.path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    handler.send_response(resp.status)
    for k, v in resp.getheaders():
        if k.lower() not in {"transfer-encoding", "connection", "content-length"}:
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    conn.close()

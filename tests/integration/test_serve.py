"""`mailgate serve`: HTTPS with a self-signed certificate made on first run, health routes only."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_health_over_https_and_serves_no_data(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "MAILGATE_HOME": str(home)}
    env.pop("MAILGATE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mailgate", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        cert = home / "tls" / "localhost.crt"
        context = ssl.create_default_context()
        deadline = time.monotonic() + 30
        while True:
            try:
                if cert.exists():
                    context = ssl.create_default_context(cafile=str(cert))
                    response = httpx2.get(f"https://localhost:{port}/healthz", verify=context)
                    break
            except httpx2.ConnectError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "mailgate serve did not start"
            time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        ready = httpx2.get(f"https://localhost:{port}/readyz", verify=context)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert (home / "mailgate.db").exists()
        assert oct((home / "tls" / "localhost.key").stat().st_mode & 0o777) == "0o600"
        metrics = httpx2.get(f"https://localhost:{port}/metrics", verify=context).text
        assert "# TYPE mailgate_outbox_messages gauge" in metrics
        assert "# TYPE mailgate_mailboxes gauge" in metrics
        # Nothing else answers a visitor who has not signed in.
        api = httpx2.get(f"https://localhost:{port}/api/v1/integrations", verify=context)
        assert api.status_code == 401
        for path in ("/", "/integrations", "/docs", "/openapi.json"):
            page = httpx2.get(f"https://localhost:{port}{path}", verify=context)
            assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    finally:
        process.terminate()
        process.wait(timeout=15)
    # The first start of an empty database prints the link that creates the first admin.
    said = process.stderr.read().decode() if process.stderr else ""
    assert "open this one-time link to create the first admin" in said
    assert "https://localhost:8443/welcome/" in said

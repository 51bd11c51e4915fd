"""mailgate's web app served over real HTTPS on loopback, in a background thread.

The server thread opens its own Context (its own event loop and engine) on the same database as
the test's, like a separate `mailgate serve` would.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
import uvicorn

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.web.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailgateServer:
    def __init__(self, settings: Settings, folder: Path, **app_options: object) -> None:
        self.port = free_port()
        self.settings = replace(settings, base_url=f"https://localhost:{self.port}")
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        folder.mkdir(parents=True, exist_ok=True)
        self.cert_file, self.key_file = folder / "server.pem", folder / "server.key"
        self.ca_file = folder / "ca.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(self.cert_file))
        cert.private_key_pem.write_to_path(str(self.key_file))
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.app_options = app_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.settings.base_url

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def start(self) -> MailgateServer:
        ready = threading.Event()

        def serve() -> None:
            async def main() -> None:
                ctx = Context.open(self.settings)
                options = {"run_workers": False, **self.app_options}  # workers only when asked
                app = create_app(ctx, **options)  # type: ignore[arg-type]
                config = uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=self.port,
                    log_level="warning",
                    ssl_certfile=str(self.cert_file),
                    ssl_keyfile=str(self.key_file),
                )
                self._server = uvicorn.Server(config)
                serving = asyncio.create_task(self._server.serve())
                while not self._server.started and not serving.done():
                    await asyncio.sleep(0.01)
                ready.set()
                await serving

            asyncio.run(main())

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(20), "mailgate's web server did not start"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> MailgateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def mailgate_server(settings: Settings, tmp_path: Path) -> Iterator[MailgateServer]:
    with MailgateServer(settings, tmp_path / "tls") as server:
        yield server

"""Serving the emulator with uvicorn, from the command line or a test's background thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn

from mailgate_emulator.app import create_app
from mailgate_emulator.state import EmulatorState


class EmulatorServer(uvicorn.Server):
    """A uvicorn server that says when start-up is over and where it listens.

    `startup_finished` is set whether start-up succeeded or not (then `started` is False);
    `on_listening` runs once the sockets are bound.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_listening: Callable[[EmulatorServer], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.startup_finished = threading.Event()
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind and start serving, then report."""
        try:
            await super().startup(sockets)
        finally:
            self.startup_finished.set()
        if self.started and self._on_listening is not None:
            self._on_listening(self)

    def bound_address(self) -> tuple[str, int]:
        """The host and port it listens on (the real port when asked for port 0)."""
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                return str(host), int(port)
        raise RuntimeError("the emulator is not listening")


def server_config(
    state: EmulatorState,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    log_level: str = "warning",
) -> uvicorn.Config:
    """Uvicorn settings for serving `state`; port 0 lets the OS choose."""
    return uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level=log_level,
        access_log=False,  # uvicorn's access log writes to stdout, which carries our one line
        lifespan="off",
    )

"""The provider emulator (`mailgate.emulator`) served for tests, in a thread or a subprocess.

Register the fixtures with ``pytest_plugins = ["tests.support.emulator"]`` in a conftest.py:

* ``emulator_server`` (session): one emulator served by uvicorn in a background thread.
* ``emulator`` (function): that server with its state reset — empty registrations, clock back on
  real time, no faults, empty request log. Use ``emulator.url`` and drive ``emulator.state``.
* ``emulator_process`` (function): ``python -m mailgate.emulator`` in a subprocess, for tests that
  need a separate process; drive it through its control API (``/_emulator/…``).

``RunningEmulator`` and ``EmulatorProcess`` are also usable directly as context managers.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgate.emulator import EmulatorState
from mailgate.emulator.serve import EmulatorServer, server_config

_START_TIMEOUT = 10.0


class RunningEmulator:
    """`create_app(state)` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        *,
        host: str = "127.0.0.1",
        ssl_certfile: Path | None = None,
        ssl_keyfile: Path | None = None,
    ) -> None:
        self.state = state or EmulatorState()
        self._scheme = "https" if ssl_certfile else "http"
        self._config = server_config(
            self.state, host=host, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
        )
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> RunningEmulator:
        """Serve in a thread; returns once the socket is bound."""
        server = EmulatorServer(self._config)
        thread = threading.Thread(target=server.run, name="mailgate-emulator", daemon=True)
        thread.start()
        if not server.startup_finished.wait(_START_TIMEOUT) or not server.started:
            server.should_exit = True
            thread.join(_START_TIMEOUT)
            raise RuntimeError("the emulator did not start")
        self._server, self._thread = server, thread
        host, port = server.bound_address()
        self.url = f"{self._scheme}://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(_START_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> RunningEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Endpoint URLs, as the real providers lay them out.

    def microsoft_token_url(self, tenant: str = "common") -> str:
        """`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, on the emulator."""
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    def microsoft_discovery_url(self, tenant: str = "common") -> str:
        """The v2.0 OpenID configuration for `tenant`."""
        return f"{self.url}/{tenant}/v2.0/.well-known/openid-configuration"

    @property
    def google_token_url(self) -> str:
        """`https://oauth2.googleapis.com/token`, on the emulator."""
        return f"{self.url}/token"

    @property
    def google_revoke_url(self) -> str:
        """`https://oauth2.googleapis.com/revoke`, on the emulator."""
        return f"{self.url}/revoke"

    @property
    def introspection_url(self) -> str:
        """The RFC 7662 introspection endpoint."""
        return f"{self.url}/introspect"


_LISTENING = re.compile(r"^listening on (https?://\S+)$")


class EmulatorProcess:
    """`python -m mailgate.emulator` in a subprocess; `url` is read from its first stdout line."""

    def __init__(self, *extra_args: str) -> None:
        self._args = [
            sys.executable,
            "-m",
            "mailgate.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
        self._args += list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> EmulatorProcess:
        """Start the process; returns once it printed its address."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._process = process
        try:
            line = _read_line(process, _START_TIMEOUT)
        except Exception:
            self.stop()
            raise
        match = _LISTENING.match(line)
        if match is None:
            stderr = self.stop()
            raise RuntimeError(f"the emulator printed {line!r}, not its address; stderr: {stderr}")
        self.url = match.group(1)
        return self

    def stop(self) -> str:
        """Terminate the process; returns what it wrote to stderr."""
        process, self._process = self._process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stderr = process.stderr.read() if process.stderr else b""
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        return stderr.decode(errors="replace")

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The process's first stdout line, waiting at most `timeout` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("the emulator did not announce its address in time")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the emulator exited with status {process.wait()}")
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode().strip()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[RunningEmulator]:
    """One emulator for the whole session (reset per test by `emulator`)."""
    with RunningEmulator() as running:
        yield running


@pytest.fixture
def emulator(emulator_server: RunningEmulator) -> RunningEmulator:
    """The session's emulator with fresh state."""
    emulator_server.state.reset()
    return emulator_server


@pytest.fixture
def emulator_process() -> Iterator[EmulatorProcess]:
    """`python -m mailgate.emulator` in a subprocess, stopped after the test."""
    with EmulatorProcess() as process:
        yield process

"""The provider emulator (`mailgate_emulator`) served for tests, in a thread or a subprocess.

Register the fixtures with ``pytest_plugins = ["tests.support.emulator"]`` in a conftest.py:

* ``emulator_server`` (session): one emulator served by uvicorn in a background thread.
* ``emulator`` (function): that server with its state reset — empty registrations, clock back on
  real time, no faults, empty request log. Use ``emulator.url`` and drive ``emulator.state``.
* ``emulator_process`` (function): ``python -m mailgate_emulator`` in a subprocess, for tests that
  need a separate process; drive it through its control API (``/_emulator/…``).

``RunningEmulator`` and ``EmulatorProcess`` are also usable directly as context managers.

For the interactive flows, ``parse_forms`` reads the emulator's HTML pages, ``sign_in`` walks an
authorization URL through the sign-in and consent pages to the redirect, and ``verify_device``
enters a user code and signs in on the device verification page — with an ``httpx2.AsyncClient``
that keeps cookies and does not follow redirects.
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
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx2
import pytest

from mailgate_emulator import EmulatorState
from mailgate_emulator.serve import EmulatorServer, server_config

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

    def microsoft_authorize_url(self, tenant: str = "common", **params: str) -> str:
        """`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize?…`, on the emulator."""
        return f"{self.url}/{tenant}/oauth2/v2.0/authorize?{urlencode(params)}"

    def microsoft_devicecode_url(self, tenant: str = "common") -> str:
        """The device authorization endpoint `/{tenant}/oauth2/v2.0/devicecode`."""
        return f"{self.url}/{tenant}/oauth2/v2.0/devicecode"

    def google_authorize_url(self, **params: str) -> str:
        """`https://accounts.google.com/o/oauth2/v2/auth?…`, on the emulator."""
        return f"{self.url}/o/oauth2/v2/auth?{urlencode(params)}"

    @property
    def google_device_code_url(self) -> str:
        """`https://oauth2.googleapis.com/device/code`, on the emulator."""
        return f"{self.url}/device/code"


@dataclass
class HtmlForm:
    """One ``<form>`` of an emulator page: its action, filled fields and submit buttons."""

    action: str
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, list[str]] = field(default_factory=dict)

    def data(self, **values: str) -> dict[str, str]:
        """The fields as a browser would post them, with ``values`` typed in or clicked."""
        return {**self.fields, **values}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []
        self.alerts: list[str] = []
        self._in_alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            method = attributes.get("method", "get").lower()
            self.forms.append(HtmlForm(attributes.get("action", ""), method))
        elif tag == "input" and self.forms and "name" in attributes:
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms and "name" in attributes:
            values = self.forms[-1].buttons.setdefault(attributes["name"], [])
            values.append(attributes.get("value", ""))
        self._in_alert = attributes.get("role") == "alert"

    def handle_data(self, data: str) -> None:
        if self._in_alert and data.strip():
            self.alerts.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_alert = False


def parse_forms(html: str) -> list[HtmlForm]:
    """The forms on a page."""
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def page_alerts(html: str) -> list[str]:
    """The error messages a page shows (``role="alert"``), e.g. a wrong password's."""
    parser = _FormParser()
    parser.feed(html)
    return parser.alerts


async def _fill_pages(
    client: httpx2.AsyncClient,
    response: httpx2.Response,
    login: str,
    password: str,
    decision: str,
) -> httpx2.Response:
    """Fill sign-in and consent forms until a page is neither (or shows an error)."""
    for _ in range(5):
        forms = parse_forms(response.text) if response.status_code == 200 else []
        if not forms or page_alerts(response.text):
            return response
        form = forms[0]
        if "password" in form.fields:
            data = form.data(login=login, password=password)
        elif "decision" in form.buttons:
            data = form.data(decision=decision)
        else:
            return response
        response = await client.post(urljoin(str(response.url), form.action), data=data)
    return response


async def sign_in(
    client: httpx2.AsyncClient,
    authorize_url: str,
    login: str,
    password: str,
    *,
    decision: str = "accept",
) -> httpx2.Response:
    """Open an authorization URL and answer its pages: the redirect (or the page it stops on)."""
    response = await client.get(authorize_url)
    return await _fill_pages(client, response, login, password, decision)


async def verify_device(
    client: httpx2.AsyncClient,
    verification_url: str,
    user_code: str,
    login: str,
    password: str,
    *,
    decision: str = "accept",
) -> httpx2.Response:
    """Enter a user code on the verification page and sign in: the final page."""
    page = await client.get(verification_url)
    form = parse_forms(page.text)[0]
    response = await client.post(
        urljoin(str(page.url), form.action), data=form.data(user_code=user_code)
    )
    return await _fill_pages(client, response, login, password, decision)


_LISTENING = re.compile(r"^listening on (https?://\S+)$")


class EmulatorProcess:
    """`python -m mailgate_emulator` in a subprocess; `url` is read from its first stdout line."""

    def __init__(self, *extra_args: str) -> None:
        self._args = [
            sys.executable,
            "-m",
            "mailgate_emulator",
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
    """`python -m mailgate_emulator` in a subprocess, stopped after the test."""
    with EmulatorProcess() as process:
        yield process

"""oidc-provider (npm, v9) as a real third-party authorization server for the test suite.

The Node project lives in ``tests/support/oidc_provider/`` (``server.mjs`` + lockfile). This module
installs it on demand (:func:`ensure_installed`), starts it on 127.0.0.1 with a free port
(:class:`OidcProvider`), and drives its (development) login and consent pages headlessly
(:func:`sign_in_with_pages`, :func:`complete_authorization`, :func:`approve_device_code`).

Register the fixtures with ``pytest_plugins = ["tests.support.oidc"]`` in a conftest.py:

* ``oidc_provider`` (session): one shared server with the default clients and options.
* ``oidc_provider_factory`` (function): ``factory(access_token_ttl=2, rotate_refresh_token=False)``
  starts a private server with other options; stopped at the end of the test.

Skip rule: when Node/npm or the npm install is unavailable the fixtures FAIL if ``$CI`` is set or
the process runs as root; only a developer machine without root gets a ``pytest.skip``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx2
import pytest

from tests.support.servers import unavailable

SUPPORT_DIR = Path(__file__).resolve().parent / "oidc_provider"
SERVER_SCRIPT = SUPPORT_DIR / "server.mjs"

DEFAULT_REDIRECT_URI = "https://localhost:8443/oauth2/callback"
DEFAULT_RESOURCE = "urn:mailgate:test:mail"
DEFAULT_CLIENT_CREDENTIALS_USERNAME = "service@example.test"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

START_TIMEOUT = 20.0
INSTALL_TIMEOUT = 300.0


class OidcSupportUnavailable(RuntimeError):
    """Node, npm or the oidc-provider install is missing (an environment problem)."""


class OidcProviderStartError(RuntimeError):
    """The server was installed but did not come up."""


class OidcFlowError(RuntimeError):
    """A headless sign-in / device approval did not end where it should.

    ``error`` / ``error_description`` carry an OAuth error when the server returned one (at the
    redirect URI or at the token endpoint); ``status`` and ``body`` the last HTTP response seen.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status: int | None = None,
        body: str | None = None,
        url: str | None = None,
    ) -> None:
        details = [message]
        if error:
            details.append(f"error={error!r}")
        if error_description:
            details.append(f"error_description={error_description!r}")
        if status is not None:
            details.append(f"status={status}")
        if url:
            details.append(f"url={url}")
        if body:
            details.append(f"body={body[:2000]!r}")
        super().__init__("; ".join(details))
        self.error = error
        self.error_description = error_description
        self.status = status
        self.body = body
        self.url = url


# --------------------------------------------------------------------------------------------
# install


def _node_and_npm() -> tuple[str, str]:
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if missing:
        raise OidcSupportUnavailable(
            f"{' and '.join(missing)} not found on PATH: oidc-provider tests need Node.js "
            "(20 or later) and npm"
        )
    assert node is not None and npm is not None
    return node, npm


def _installed(node_modules: Path) -> bool:
    return (node_modules / "oidc-provider" / "package.json").is_file()


def ensure_installed() -> Path:
    """Return ``tests/support/oidc_provider/node_modules``, running ``npm ci`` first if needed.

    Raises :class:`OidcSupportUnavailable` when node/npm are missing or the install fails.
    Safe to call from several processes at once (pytest-xdist): installs under a file lock.
    """
    _, npm = _node_and_npm()
    node_modules = SUPPORT_DIR / "node_modules"
    if _installed(node_modules):
        return node_modules
    # The lock lives outside the repo so nothing new needs ignoring.
    digest = hashlib.sha256(str(SUPPORT_DIR).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"mailgate-oidc-provider-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed(node_modules):
                return node_modules
            lockfile = SUPPORT_DIR / "package-lock.json"
            verb = ["ci"] if lockfile.is_file() else ["install"]
            command = [npm, *verb, "--no-audit", "--no-fund", "--loglevel=error"]
            try:
                result = subprocess.run(
                    command,
                    cwd=SUPPORT_DIR,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise OidcSupportUnavailable(
                    f"`{' '.join(command)}` in {SUPPORT_DIR} timed out after {INSTALL_TIMEOUT:.0f}s"
                ) from exc
            if result.returncode != 0 or not _installed(node_modules):
                raise OidcSupportUnavailable(
                    f"`{' '.join(command)}` in {SUPPORT_DIR} failed (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}".strip()
                )
            return node_modules
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# the server


@dataclass(frozen=True)
class OidcClient:
    """A client registered at the provider. ``client_secret`` is None for public clients."""

    client_id: str
    client_secret: str | None
    auth_method: str  # client_secret_basic | client_secret_post | none

    def token_request_auth(self, data: dict[str, str]) -> httpx2.BasicAuth | None:
        """Add this client's credentials to a token/introspection/revocation form; returns the
        HTTP Basic auth to pass along (or None)."""
        if self.auth_method == "client_secret_basic":
            assert self.client_secret is not None
            return httpx2.BasicAuth(self.client_id, self.client_secret)
        data["client_id"] = self.client_id
        if self.auth_method == "client_secret_post":
            assert self.client_secret is not None
            data["client_secret"] = self.client_secret
        return None


def _secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class OidcProvider:
    """A running ``node server.mjs`` (oidc-provider v9) on 127.0.0.1.

    Start with :meth:`start` (a classmethod returning the running server); stop with :meth:`stop`
    or use it as a context manager. Clients registered:

    * ``basic_client`` — confidential, ``client_secret_basic``; grant types authorization_code,
      refresh_token, client_credentials, device_code; redirect URI :attr:`redirect_uri`.
    * ``post_client`` — the same with ``client_secret_post``.
    * ``device_client`` — public (``none``), device_code + refresh_token.
    * ``introspection_client`` — the resource server (Dovecot) calling introspection; no grants.

    Access tokens are opaque, issued for the resource :attr:`resource` (scope ``mail``), carry a
    ``username`` at introspection (the login, or ``client_credentials_username`` for client
    credentials tokens). Refresh tokens introspect as inactive for every client except the one
    they were issued to.
    """

    issuer: str
    redirect_uri: str
    resource: str
    basic_client: OidcClient
    post_client: OidcClient
    device_client: OidcClient
    introspection_client: OidcClient
    client_credentials_username: str | None
    access_token_ttl: int
    rotate_refresh_token: bool
    workdir: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        tmp_path: Path,
        *,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        extra_redirect_uris: Sequence[str] = (),
        access_token_ttl: int = 3600,
        refresh_token_ttl: int = 14 * 24 * 3600,
        rotate_refresh_token: bool = True,
        client_credentials_username: str | None = DEFAULT_CLIENT_CREDENTIALS_USERNAME,
        resource: str = DEFAULT_RESOURCE,
        resource_scope: str = "mail",
        use_granted_resource: bool = True,
        strict_client_auth_methods: bool = True,
        extra_clients: Sequence[Mapping[str, Any]] = (),
        debug: bool = False,
        timeout: float = START_TIMEOUT,
    ) -> OidcProvider:
        """Install if needed, start the server in ``tmp_path`` and wait until it listens.

        ``use_granted_resource=False`` makes code / refresh-token grants that include ``openid``
        return plain userinfo access tokens (no audience; still opaque and introspectable with a
        ``username``) instead of tokens bound to ``resource``.

        ``strict_client_auth_methods`` (default on): a client registered for
        ``client_secret_basic`` that puts its secret in the form, or a ``client_secret_post``
        client that uses HTTP Basic, gets 401 ``invalid_client`` (oidc-provider alone accepts
        either method for both).
        """
        ensure_installed()
        node, _ = _node_and_npm()
        workdir = Path(tmp_path)
        workdir.mkdir(parents=True, exist_ok=True)

        def confidential(client_id: str, method: str) -> OidcClient:
            return OidcClient(client_id, _secret(), method)

        basic = confidential("mailgate-basic", "client_secret_basic")
        post = confidential("mailgate-post", "client_secret_post")
        device = OidcClient("mailgate-device", None, "none")
        introspector = confidential("dovecot", "client_secret_basic")
        redirect_uris = [redirect_uri, *extra_redirect_uris]
        all_grants = [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            DEVICE_CODE_GRANT,
        ]
        clients: list[Mapping[str, Any]] = [
            *(
                {
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "client_name": f"mailgate ({c.auth_method})",
                    "token_endpoint_auth_method": c.auth_method,
                    "grant_types": all_grants,
                    "response_types": ["code"],
                    "redirect_uris": redirect_uris,
                }
                for c in (basic, post)
            ),
            {
                "client_id": device.client_id,
                "client_name": "mailgate device",
                "token_endpoint_auth_method": "none",
                "grant_types": [DEVICE_CODE_GRANT, "refresh_token"],
                "response_types": [],
                "redirect_uris": [],
            },
            {
                "client_id": introspector.client_id,
                "client_secret": introspector.client_secret,
                "client_name": "resource server (introspection)",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
            },
            *extra_clients,
        ]
        usernames = (
            {
                basic.client_id: client_credentials_username,
                post.client_id: client_credentials_username,
            }
            if client_credentials_username
            else {}
        )
        config = {
            "clients": clients,
            "resource": resource,
            "resourceScope": resource_scope,
            "useGrantedResource": use_granted_resource,
            "accessTokenTtl": access_token_ttl,
            "refreshTokenTtl": refresh_token_ttl,
            "rotateRefreshToken": rotate_refresh_token,
            "clientCredentialsUsernames": usernames,
            "strictClientAuthMethods": strict_client_auth_methods,
        }
        config_path = workdir / "oidc-provider.json"
        config_path.write_text(json.dumps(config, indent=2))
        stdout_path = workdir / "oidc-provider.stdout.log"
        stderr_path = workdir / "oidc-provider.stderr.log"

        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "ROTATE_REFRESH_TOKEN", "PORT"}
        }
        env["NODE_ENV"] = "test"
        if debug:
            env["OIDC_PROVIDER_DEBUG"] = "1"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [node, str(SERVER_SCRIPT), "--port", "0", "--config", str(config_path)],
                cwd=SUPPORT_DIR,
                stdin=subprocess.PIPE,  # the server exits when this closes
                stdout=out,
                stderr=err,
                env=env,
            )
        try:
            issuer = _wait_for_listening(process, stdout_path, stderr_path, timeout)
        except BaseException:
            _terminate(process)
            raise
        provider = cls(
            issuer=issuer,
            redirect_uri=redirect_uri,
            resource=resource,
            basic_client=basic,
            post_client=post,
            device_client=device,
            introspection_client=introspector,
            client_credentials_username=client_credentials_username,
            access_token_ttl=access_token_ttl,
            rotate_refresh_token=rotate_refresh_token,
            workdir=workdir,
            _process=process,
        )
        try:
            response = httpx2.get(provider.discovery_url, timeout=10, trust_env=False)
            response.raise_for_status()
            provider.metadata = response.json()
        except BaseException as exc:
            provider.stop()
            raise OidcProviderStartError(
                f"oidc-provider at {issuer} did not serve its discovery document: {exc}\n"
                f"{_tail(stderr_path)}"
            ) from exc
        return provider

    def stop(self) -> None:
        if self._process is not None:
            _terminate(self._process)
            self._process = None

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata.get("authorization_endpoint", f"{self.issuer}/auth"))

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata.get("token_endpoint", f"{self.issuer}/token"))

    @property
    def introspection_endpoint(self) -> str:
        return str(
            self.metadata.get("introspection_endpoint", f"{self.issuer}/token/introspection")
        )

    @property
    def revocation_endpoint(self) -> str:
        return str(self.metadata.get("revocation_endpoint", f"{self.issuer}/token/revocation"))

    @property
    def device_authorization_endpoint(self) -> str:
        return str(self.metadata.get("device_authorization_endpoint", f"{self.issuer}/device/auth"))

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata.get("userinfo_endpoint", f"{self.issuer}/me"))

    @property
    def introspection_path(self) -> str:
        return urlsplit(self.introspection_endpoint).path

    def introspection_url_with_credentials(self) -> str:
        """``http://ID:SECRET@127.0.0.1:PORT/token/introspection`` for Dovecot's
        ``introspection_url`` (user:pass become HTTP Basic)."""
        parts = urlsplit(self.introspection_endpoint)
        c = self.introspection_client
        return f"{parts.scheme}://{c.client_id}:{c.client_secret}@{parts.netloc}{parts.path}"

    @property
    def stderr_log(self) -> Path:
        return self.workdir / "oidc-provider.stderr.log"

    # -- clients -----------------------------------------------------------------------------

    @property
    def clients(self) -> tuple[OidcClient, ...]:
        return (self.basic_client, self.post_client, self.device_client, self.introspection_client)

    def client(self, client_id: str) -> OidcClient:
        for candidate in self.clients:
            if candidate.client_id == client_id:
                return candidate
        raise KeyError(f"no client {client_id!r} registered by this fixture")

    # -- small raw helpers for tests -------------------------------------------------------

    async def introspect(
        self, token: str, *, client: OidcClient | None = None, token_type_hint: str | None = None
    ) -> dict[str, Any]:
        """RFC 7662 introspection as the resource server (default) or another client."""
        client = client or self.introspection_client
        data = {"token": token}
        if token_type_hint:
            data["token_type_hint"] = token_type_hint
        auth = client.token_request_auth(data)
        async with _http_client() as http:
            response = await http.post(
                self.introspection_endpoint, data=data, auth=auth or httpx2.USE_CLIENT_DEFAULT
            )
        if response.status_code != 200:
            raise OidcFlowError(
                "introspection failed", status=response.status_code, body=response.text
            )
        result: dict[str, Any] = response.json()
        return result

    async def token_request(self, client: OidcClient, data: Mapping[str, str]) -> httpx2.Response:
        """POST the token endpoint with ``data`` plus ``client``'s authentication."""
        form = dict(data)
        auth = client.token_request_auth(form)
        async with _http_client() as http:
            return await http.post(
                self.token_endpoint, data=form, auth=auth or httpx2.USE_CLIENT_DEFAULT
            )


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return text[-limit:] if text else "(stderr empty)"


def _wait_for_listening(
    process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path, timeout: float
) -> str:
    marker = "listening on "
    deadline = time.monotonic() + timeout
    while True:
        for line in stdout_path.read_text(errors="replace").splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        code = process.poll()
        if code is not None:
            raise OidcProviderStartError(
                f"oidc-provider exited with code {code} before listening.\n"
                f"stdout:\n{_tail(stdout_path)}\nstderr:\n{_tail(stderr_path)}"
            )
        if time.monotonic() > deadline:
            raise OidcProviderStartError(
                f"oidc-provider did not print 'listening on' within {timeout:.0f}s.\n"
                f"stdout:\n{_tail(stdout_path)}\nstderr:\n{_tail(stderr_path)}"
            )
        time.sleep(0.02)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


# --------------------------------------------------------------------------------------------
# pytest fixtures


def _unavailable(reason: str) -> NoReturn:
    unavailable("oidc-provider support", reason)


def _start_or_fail(tmp_path: Path, **options: Any) -> OidcProvider:
    try:
        ensure_installed()
    except OidcSupportUnavailable as exc:
        _unavailable(str(exc))
    return OidcProvider.start(tmp_path, **options)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One oidc-provider for the whole session (default clients and options)."""
    provider = _start_or_fail(tmp_path_factory.mktemp("oidc-provider"))
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def oidc_provider_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., OidcProvider]]:
    """``factory(**options)`` → a private running :class:`OidcProvider` (options as in
    :meth:`OidcProvider.start`), stopped after the test."""
    started: list[OidcProvider] = []

    def factory(**options: Any) -> OidcProvider:
        provider = _start_or_fail(tmp_path_factory.mktemp("oidc-provider"), **options)
        started.append(provider)
        return provider

    try:
        yield factory
    finally:
        for provider in started:
            provider.stop()


# --------------------------------------------------------------------------------------------
# headless browser: pages, forms


@dataclass
class _Form:
    action: str | None
    method: str
    id: str | None
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, value)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.fields}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: (value or "") for key, value in attrs}
        if tag == "form":
            self._current = _Form(
                action=attributes.get("action"),
                method=(attributes.get("method") or "get").lower(),
                id=attributes.get("id"),
            )
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None:
            name = attributes.get("name")
            if name:
                self._current.fields.append(
                    (name, attributes.get("type", "text").lower(), attributes.get("value", ""))
                )

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(html: str) -> list[_Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _http_client() -> httpx2.AsyncClient:
    # A fresh client is a fresh cookie jar (a fresh "browser"). Redirects are followed by hand.
    return httpx2.AsyncClient(follow_redirects=False, timeout=10.0, trust_env=False)


def _same_endpoint(url: str, endpoint: str) -> bool:
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc.lower(), a.path or "/") == (
        b.scheme,
        b.netloc.lower(),
        b.path or "/",
    )


def pkce_pair(code_verifier: str | None = None) -> tuple[str, str]:
    """``(code_verifier, S256 code_challenge)``; a fresh verifier when none is given."""
    verifier = code_verifier or secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


async def _drive(
    http: httpx2.AsyncClient,
    response: httpx2.Response,
    *,
    inputs: Mapping[str, str],
    stop_at: str | None,
    max_steps: int = 25,
    decline_consent: bool = False,
) -> httpx2.Response:
    """Follow redirects and submit the pages' forms like a browser whose user types ``inputs``
    into the visible fields and presses the (non-abort) submit button.

    Returns the redirect response whose Location is ``stop_at`` (not followed), or — when
    ``stop_at`` is None — the first 2xx page that has no form to submit.
    """
    for _ in range(max_steps):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at is not None and _same_endpoint(location, stop_at):
                return response
            response = await http.get(location)
            continue
        if response.status_code != 200:
            raise OidcFlowError(
                "unexpected response while driving the provider's pages",
                status=response.status_code,
                body=response.text,
                url=str(response.url),
            )
        abort = re.search(r'href="([^"]*/abort)"', response.text)
        if decline_consent and abort and 'value="consent"' in response.text:
            # The user presses [ Cancel ] on the consent page.
            response = await http.get(urljoin(str(response.url), html.unescape(abort.group(1))))
            continue
        candidates = [
            form
            for form in _forms(response.text)
            if form.method == "post" and "abort" not in form.names()
        ]
        if not candidates:
            if stop_at is None:
                return response
            raise OidcFlowError(
                "page has no form to submit and did not redirect",
                status=response.status_code,
                body=response.text,
                url=str(response.url),
            )
        form = candidates[0]
        data: dict[str, str] = {}
        for name, kind, value in form.fields:
            if kind in {"submit", "button", "reset", "image"}:
                continue
            if kind in {"checkbox", "radio"}:
                # Only checked-by-default would be sent; oidc-provider's dev pages have none.
                continue
            if kind == "hidden":
                data[name] = value
            elif name in inputs:
                data[name] = inputs[name]
            elif value:
                data[name] = value
            else:
                raise OidcFlowError(
                    f"don't know what to type into field {name!r} ({kind})",
                    body=response.text,
                    url=str(response.url),
                )
        action = urljoin(str(response.url), form.action or str(response.url))
        response = await http.post(action, data=data)
    raise OidcFlowError(f"gave up after {max_steps} pages", url=str(response.url))


async def complete_authorization(
    provider: OidcProvider,
    authorization_url: str,
    *,
    login: str,
    redirect_uri: str | None = None,
    password: str = "any-password",
    expected_state: str | None = None,
    decline_consent: bool = False,
) -> dict[str, str]:
    """Open ``authorization_url`` (e.g. one built by mailgate) in a fresh headless browser, log in
    as ``login``, consent, and return the parameters of the final redirect to ``redirect_uri``
    (``code``, ``state``, ``iss`` …, plus ``callback_url``) without following it.

    An ``error`` at the redirect URI raises :class:`OidcFlowError` with ``error`` set.
    """
    target = redirect_uri or provider.redirect_uri
    async with _http_client() as http:
        first = await http.get(authorization_url)
        final = await _drive(
            http,
            first,
            inputs={"login": login, "password": password},
            stop_at=target,
            decline_consent=decline_consent,
        )
    callback_url = urljoin(str(final.url), final.headers["location"])
    query = {key: values[0] for key, values in parse_qs(urlsplit(callback_url).query).items()}
    if "error" in query:
        raise OidcFlowError(
            "the authorization server redirected back with an error",
            error=query["error"],
            error_description=query.get("error_description"),
            url=callback_url,
        )
    if "code" not in query:
        raise OidcFlowError("redirect to the redirect URI has no code", url=callback_url)
    if expected_state is not None and query.get("state") != expected_state:
        raise OidcFlowError(
            f"state mismatch: sent {expected_state!r}, got {query.get('state')!r}",
            url=callback_url,
        )
    if "iss" in query and query["iss"] != provider.issuer:
        raise OidcFlowError(f"iss mismatch: {query['iss']!r} != {provider.issuer!r}")
    return {**query, "callback_url": callback_url}


def authorization_url(
    provider: OidcProvider,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str] | str,
    code_challenge: str,
    state: str,
    nonce: str | None = None,
    extra_params: Mapping[str, str | None] | None = None,
) -> str:
    """Authorization request URL (code flow, PKCE S256). ``prompt=consent`` is added when
    ``offline_access`` is asked for (oidc-provider drops it otherwise). An ``extra_params``
    value of None removes that parameter."""
    scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scope_list),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if nonce is not None:
        params["nonce"] = nonce
    if "offline_access" in scope_list:
        params["prompt"] = "consent"
    params.update(extra_params or {})
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{provider.authorization_endpoint}?{query}"


async def sign_in_with_pages(
    provider: OidcProvider,
    *,
    client_id: str,
    client_secret: str | None,
    redirect_uri: str,
    login: str,
    scopes: Sequence[str] | str,
    code_verifier: str | None = None,
    extra_params: Mapping[str, str | None] | None = None,
    auth_method: str | None = None,
    password: str = "any-password",
) -> dict[str, Any]:
    """Authorization code flow end to end, headless: authorization request (PKCE S256, state,
    nonce, prompt=consent with offline_access), login form, consent form, ``code`` from the
    redirect to ``redirect_uri`` (not followed), then the token request with ``code_verifier``
    and the client's authentication method (looked up among the fixture's clients unless
    ``auth_method`` is given; ``client_secret_basic`` when unknown and a secret is given).

    Returns the token response JSON (access_token, refresh_token, id_token, expires_in, scope,
    token_type). Raises :class:`OidcFlowError` on an error at any step.
    """
    verifier, challenge = pkce_pair(code_verifier)
    state = secrets.token_urlsafe(16)
    nonce = secrets.token_urlsafe(16)
    url = authorization_url(
        provider,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_challenge=challenge,
        state=state,
        nonce=nonce,
        extra_params=extra_params,
    )
    result = await complete_authorization(
        provider,
        url,
        login=login,
        redirect_uri=redirect_uri,
        password=password,
        expected_state=state,
    )

    if auth_method is None:
        try:
            auth_method = provider.client(client_id).auth_method
        except KeyError:
            auth_method = "client_secret_basic" if client_secret else "none"
    client = OidcClient(client_id, client_secret, auth_method)
    response = await provider.token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    body: dict[str, Any]
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        raise OidcFlowError(
            "token request (authorization_code) failed",
            error=body.get("error"),
            error_description=body.get("error_description"),
            status=response.status_code,
            body=response.text,
        )
    return body


async def approve_device_code(
    provider: OidcProvider,
    *,
    user_code: str,
    login: str,
    verification_uri: str | None = None,
    password: str = "any-password",
) -> None:
    """As the user on another device: open the verification page, enter ``user_code``, confirm,
    log in as ``login`` and consent. Raises :class:`OidcFlowError` unless the provider shows its
    success page."""
    page = verification_uri or f"{provider.issuer}/device"
    async with _http_client() as http:
        first = await http.get(page)
        final = await _drive(
            http,
            first,
            inputs={"user_code": user_code, "login": login, "password": password},
            stop_at=None,
        )
    if "Sign-in Success" not in final.text:
        raise OidcFlowError(
            "device approval did not reach the success page",
            status=final.status_code,
            body=final.text,
            url=str(final.url),
        )


async def deny_device_code(
    provider: OidcProvider, *, user_code: str, verification_uri: str | None = None
) -> None:
    """As the user on another device: enter ``user_code``, then press [ Abort ] on the
    confirmation page (the device then gets ``access_denied``)."""
    page = verification_uri or f"{provider.issuer}/device"
    async with _http_client() as http:
        entry = await http.get(page)
        form = next(f for f in _forms(entry.text) if f.method == "post")
        data = {name: value for name, _kind, value in form.fields if name}
        data["user_code"] = user_code
        confirm = await http.post(urljoin(str(entry.url), form.action or page), data=data)
        confirm_form = next(f for f in _forms(confirm.text) if f.method == "post")
        fields = {name: value for name, kind, value in confirm_form.fields if kind == "hidden"}
        fields["abort"] = "yes"
        done = await http.post(urljoin(str(confirm.url), confirm_form.action or page), data=fields)
    if done.status_code >= 400 and "abort" not in done.text.lower():
        raise OidcFlowError(
            "device denial did not reach the provider's abort page",
            status=done.status_code,
            body=done.text,
            url=str(done.url),
        )


__all__ = [
    "DEFAULT_CLIENT_CREDENTIALS_USERNAME",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_RESOURCE",
    "DEVICE_CODE_GRANT",
    "OidcClient",
    "OidcFlowError",
    "OidcProvider",
    "OidcProviderStartError",
    "OidcSupportUnavailable",
    "approve_device_code",
    "authorization_url",
    "complete_authorization",
    "deny_device_code",
    "ensure_installed",
    "oidc_provider",
    "oidc_provider_factory",
    "pkce_pair",
    "sign_in_with_pages",
]

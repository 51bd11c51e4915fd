"""The one way mailgate makes outbound HTTP requests (token endpoints, discovery).

TLS is always verified against the system's trust store (which honours SSL_CERT_FILE and
SSL_CERT_DIR); HTTPS_PROXY / NO_PROXY are honoured.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx2

from mailgate import __version__

USER_AGENT = f"mailgate/{__version__}"
DEFAULT_TIMEOUT = 20.0

HttpFactory = Callable[[], httpx2.AsyncClient]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying context per process: loading the trust store costs tens of milliseconds."""
    return ssl.create_default_context()


def trust_local_certificate(path: Path) -> None:
    """Trust mailgate's own development certificate (valid for localhost and loopback only),
    so that `serve --demo` and the commands beside it can call the emulator it mounts."""
    if path.exists():
        tls_context().load_verify_locations(cafile=str(path))


def new_http_client(timeout: float = DEFAULT_TIMEOUT) -> httpx2.AsyncClient:
    """An HTTP client with verified TLS, proxies from the environment and mailgate's agent."""
    return httpx2.AsyncClient(
        verify=tls_context(),
        trust_env=True,
        timeout=httpx2.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
    )

"""The one way mailgate makes outbound HTTP requests (token endpoints, discovery).

TLS is always verified against the system's trust store (which honours SSL_CERT_FILE and
SSL_CERT_DIR); HTTPS_PROXY / NO_PROXY are honoured.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from mailgate import __version__
from mailgate.trust import tls_context, trust_local_certificate

__all__ = ["HttpFactory", "new_http_client", "tls_context", "trust_local_certificate"]

USER_AGENT = f"mailgate/{__version__}"
DEFAULT_TIMEOUT = 20.0

HttpFactory = Callable[[], httpx2.AsyncClient]


def new_http_client(timeout: float = DEFAULT_TIMEOUT) -> httpx2.AsyncClient:
    """An HTTP client with verified TLS, proxies from the environment and mailgate's agent."""
    return httpx2.AsyncClient(
        verify=tls_context(),
        trust_env=True,
        timeout=httpx2.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
    )

"""The part of a mail server's settings that incoming and outgoing servers share: where it is,
how the connection is secured, and how mailgate signs in (an OAuth 2.0 credential or a password).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import is_loopback_host
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.mail.sasl import MECHANISMS
from mailgate.store.models import Credential
from mailgate.store.vocabulary import AuthMethod, Security

SECURITIES = tuple(Security)
PASSWORD_DEPRECATED = "This authentication method is deprecated, you should use OAuth 2.0 instead"
# Hosts of providers that are switching off passwords for IMAP, POP and SMTP.
_OAUTH_ONLY_HOSTS = re.compile(
    r"(^|\.)(office365\.com|outlook\.com|office\.com|office365\.us|partner\.outlook\.cn|"
    r"gmail\.com|googlemail\.com)$",
    re.IGNORECASE,
)
# The same rule for the pages' script, which warns while the host is typed (JavaScript reads it).
OAUTH_ONLY_HOST_PATTERN = _OAUTH_ONLY_HOSTS.pattern
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,253})|\[?[0-9A-Fa-f:.]+\]?")


class Endpoint(Protocol):
    """A stored server (a mailbox or an SMTP server): the columns resolved here."""

    host: str
    port: int
    security: str
    username: str
    credential_id: int | None
    password_enc: str | None
    ca_file: str | None
    sasl_mechanism: str | None


class EndpointOptions(Protocol):
    """What the admin gave for those columns; None means "not given"."""

    host: str | None
    port: int | None
    security: str | None
    username: str | None
    credential_id: int | None
    password: str | None
    ca_file: str | None
    sasl_mechanism: str | None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def endpoint_view(row: Endpoint) -> dict[str, Any]:
    """The shared part of a server as shown anywhere — never the password."""
    return {
        "host": row.host,
        "port": row.port,
        "security": row.security,
        "username": row.username,
        "auth": AuthMethod.OAUTH2 if row.credential_id is not None else AuthMethod.PASSWORD,
        "credential": row.credential_id,
        "sasl_mechanism": row.sasl_mechanism or "auto",
        "ca_file": row.ca_file,
    }


# What a server's view shows that the admin does not set.
_STATE = (
    "name",
    "auth",
    "status",
    "last_check_at",
    "last_error",
    "processed",
    "quarantined",
    "created_at",
    "warnings",
)


def settings_of(view: dict[str, Any], row: Endpoint) -> dict[str, Any]:
    """What the admin set on a server, from its view (a mailbox's handler options among the
    rest), for `changed_settings`; the password by its ciphertext, which every password given
    renews."""
    settings = {name: value for name, value in view.items() if name not in _STATE}
    settings.update(settings.pop("route_options", {}))
    settings["password"] = row.password_enc
    return settings


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The audit detail of a change: the names of the settings that changed, the password
    only as "password changed" (never its value, nor its ciphertext)."""
    names = [
        "password changed" if name == "password" else name
        for name in {**before, **after}
        if before.get(name) != after.get(name)
    ]
    return ", ".join(names) or None


def password_warnings(row: Endpoint) -> list[str]:
    """The deprecation warning of a password on a Microsoft or Google host."""
    if row.password_enc is not None and uses_oauth_only_host(row.host):
        return [f"{row.host}: {PASSWORD_DEPRECATED}."]
    return []


def password_of(ctx: Context, row: Endpoint) -> str:
    assert row.password_enc is not None
    return ctx.secrets.decrypt(row.password_enc)


def uses_oauth_only_host(host: str) -> bool:
    """Microsoft's and Google's mail hosts, where password logins are being switched off."""
    return bool(_OAUTH_ONLY_HOSTS.search(host.rstrip(".")))


def choose(value: str | None, allowed: tuple[str, ...], what: str, flag: str) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise BadInput(f"Unknown {what} {value!r}: use {', '.join(allowed)} ({flag}).")
    return value


async def resolve_endpoint(
    ctx: Context,
    session: AsyncSession,
    row: Endpoint,
    opts: EndpointOptions,
    *,
    default_port: Callable[[str], int],
    reset_port: bool,
    login_hint: str,
    default_security: str = Security.SSL,
) -> list[str]:
    """Fill the endpoint columns of `row` from `opts`, check them, and return warnings."""
    warnings: list[str] = []
    if opts.host is not None:
        host = opts.host.strip()
        if not host or not _HOST_RE.fullmatch(host):
            raise BadInput(
                f"Host {opts.host!r} is not a host name or address: give the mail server's name."
            )
        row.host = host
    if not row.host:
        raise BadInput("No host given: use --host with the mail server's name.")
    if opts.security is not None:
        row.security = choose(opts.security, SECURITIES, "security", "--security") or row.security
    row.security = row.security or default_security
    if row.security == Security.NONE and not is_loopback_host(row.host.strip("[]")):
        raise BadInput(
            f"--security none sends the token in clear text, so it is refused for {row.host}, "
            "which is not a loopback address: use ssl or starttls."
        )
    if opts.port is not None:
        if not 0 < opts.port < 65536:
            raise BadInput(f"Port {opts.port} is not a TCP port: give a number from 1 to 65535.")
        row.port = opts.port
    elif reset_port or opts.security is not None or not row.port:
        row.port = default_port(row.security)
    if opts.username is not None:
        if not opts.username.strip() or len(opts.username) > 320:
            raise BadInput(
                f"The username is empty or too long: give the server's login, usually {login_hint}."
            )
        row.username = opts.username.strip()
    if not row.username:
        raise BadInput(
            f"No username given: use --username with the server's login (usually {login_hint})."
        )

    if opts.credential_id is not None and opts.password is not None:
        raise BadInput("Give either --credential or --password-file, not both.")
    if opts.credential_id is not None:
        if await session.get(Credential, opts.credential_id) is None:
            raise NotFound(
                f"No credential {opts.credential_id}: `mailgate credential list` shows the ones "
                "there are (authorize an account with `mailgate integration authorize`)."
            )
        row.credential_id = opts.credential_id
        row.password_enc = None
    if opts.password is not None:
        if not opts.password:
            raise BadInput("The password file is empty: give a file holding the password.")
        row.password_enc = ctx.secrets.encrypt(opts.password)
        row.credential_id = None
    if row.credential_id is None and row.password_enc is None:
        raise BadInput(
            "No authentication given: use --credential ID (OAuth 2.0) or --password-file F."
        )
    if row.password_enc is not None and uses_oauth_only_host(row.host):
        warnings.append(f"{row.host}: {PASSWORD_DEPRECATED}.")

    if opts.ca_file is not None:
        path = Path(opts.ca_file)
        if not path.is_file():
            raise BadInput(
                f"The CA file {opts.ca_file} does not exist: give the PEM file of the CA that signed the server's certificate."
            )
        try:
            # A bare context: loading the system's store first costs ~50 ms, per mailbox imported.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError):
            raise BadInput(
                f"The CA file {opts.ca_file} holds no PEM certificate: give the PEM file of the "
                "CA that signed the server's certificate."
            ) from None
        row.ca_file = str(path.absolute())
    if opts.sasl_mechanism is not None:
        mechanism = opts.sasl_mechanism.upper()
        row.sasl_mechanism = (
            choose(mechanism, MECHANISMS, "SASL mechanism", "--sasl")
            if mechanism != "AUTO"
            else None
        )
    return warnings

"""What the incoming and the outgoing mail server forms share: where the server is, how the
connection is secured, and how mailgate signs in (an OAuth 2.0 credential or a password), read
from the submitted form into the values the service functions take (`mailbox add` and
`smtp add` take the same, as options).

A field left empty is "not given": the service keeps the current value or its default. A
password is never put back into a form: on an edit, an empty password field keeps the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailgate.errors import BadInput
from mailgate.mail.endpoints import (
    OAUTH_ONLY_HOST_PATTERN,
    PASSWORD_DEPRECATED,
    uses_oauth_only_host,
)
from mailgate.mail.sasl import MECHANISMS
from mailgate.mail.smtp_servers import CredentialChoice
from mailgate.store.vocabulary import AuthMethod, Security
from mailgate.web.shell import whole_number

SECURITY_LABELS = {
    Security.SSL: "SSL/TLS",
    Security.STARTTLS: "STARTTLS",
    Security.NONE: "None (this machine only)",
}
SASL_CHOICES = ("auto", *MECHANISMS)


def given(form: Mapping[str, str], field: str) -> str | None:
    """The field's text, or None when it was left empty."""
    value = form.get(field, "").strip()
    return value or None


def number(form: Mapping[str, str], field: str, label: str) -> int | None:
    """A whole number the admin typed, or None when the field was left empty."""
    text = given(form, field)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadInput(f"{label} {text!r} is not a number: give digits only.") from None


def checked(form: Mapping[str, str], field: str) -> bool:
    """Whether a checkbox was ticked (an unticked one is not sent at all)."""
    return field in form


def endpoint_from(form: Mapping[str, str], stored_auth: str | None) -> dict[str, Any]:
    """The shared settings of a submitted form, by the names of the options the service
    functions take. `stored_auth` is how the server signs in now (None for a new one): choosing
    Password with the field left empty keeps a stored password."""
    credential_id, password = _auth(form, stored_auth)
    return {
        "host": given(form, "host"),
        "port": number(form, "port", "Port"),
        "security": given(form, "security"),
        "username": given(form, "username"),
        "credential_id": credential_id,
        "password": password,
        "ca_file": given(form, "ca_file"),
        "sasl_mechanism": given(form, "sasl"),
    }


def _auth(form: Mapping[str, str], stored_auth: str | None) -> tuple[int | None, str | None]:
    method = form.get("auth", AuthMethod.OAUTH2)
    if method == AuthMethod.OAUTH2:
        chosen = given(form, "credential")
        if chosen is None:
            raise BadInput(
                "No OAuth 2.0 credential chosen: choose the account the server signs in as "
                "(authorize one on an integration's page first), or choose Password."
            )
        number = whole_number(chosen)
        if number is None:
            raise BadInput(f"Credential {chosen!r} is not a credential's number: choose one.")
        return number, None
    if method == AuthMethod.PASSWORD:
        password = form.get("password", "")
        if password:
            return None, password
        if stored_auth == AuthMethod.PASSWORD:
            return None, None  # left empty: the stored password stays
        raise BadInput(
            "No password given: type the server's password, or choose an OAuth 2.0 credential."
        )
    raise BadInput("Unknown authentication method: choose an OAuth 2.0 credential or Password.")


def endpoint_form(view: Mapping[str, Any]) -> dict[str, Any]:
    """A stored server's shared settings as its edit form shows them (never the password)."""
    return {
        "host": view["host"],
        "port": str(view["port"]),
        "security": view["security"],
        "username": view["username"],
        "auth": view["auth"],
        "credential": str(view["credential"] or ""),
        "ca_file": view["ca_file"] or "",
        "sasl": view["sasl_mechanism"],
    }


def password_warning(form: Mapping[str, Any]) -> bool:
    """Whether the form asks for a password on a Microsoft or Google host: the page warns
    (its script does the same while the host is typed)."""
    host = str(form.get("host") or "")
    return form.get("auth") == AuthMethod.PASSWORD and bool(host) and uses_oauth_only_host(host)


def form_choices(credentials: list[CredentialChoice]) -> dict[str, Any]:
    """What the shared fields offer: the credentials, the security and SASL choices, and the
    hosts' rule for the password warning."""
    return {
        "credentials": credentials,
        "securities": SECURITY_LABELS,
        "sasl_choices": SASL_CHOICES,
        "oauth_only_hosts": OAUTH_ONLY_HOST_PATTERN,
        "password_deprecated": PASSWORD_DEPRECATED,
    }

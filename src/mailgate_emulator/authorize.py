"""Validating an authorization request (RFC 6749 §4.1.1), each provider's way.

RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching redirection URI,
or if the client identifier is missing or invalid, the authorization server SHOULD inform the
resource owner of the error and MUST NOT automatically redirect the user-agent to the invalid
redirection URI." Those failures raise `PageError`; later ones raise `RedirectError`, which goes
back to the app. Google shows a page for most mistakes, Microsoft redirects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from mailgate_emulator import messages as msg
from mailgate_emulator.errors import EmulatedError, MicrosoftError
from mailgate_emulator.model import AuthorizationRequest, Client, Provider
from mailgate_emulator.pkce import CHALLENGE_METHODS
from mailgate_emulator.scopes import OIDC_SCOPES, join_scope, split_scope
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.tenants import resolve_tenant

MICROSOFT_PROMPTS = frozenset({"login", "consent", "select_account", "none"})
GOOGLE_PROMPTS = frozenset({"consent", "select_account", "none"})


@dataclass(frozen=True)
class ErrorPage:
    """A dead-end error page: heading (e.g. `Error 400: redirect_uri_mismatch`), text, details."""

    status: int
    heading: str
    message: str
    details: str = ""


class PageError(Exception):
    """The request cannot be sent back to the app: show `page` instead."""

    def __init__(self, page: ErrorPage) -> None:
        super().__init__(page.message)
        self.page = page


class RedirectError(Exception):
    """The request is refused, and the app hears of it on its (registered) redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: EmulatedError) -> None:
        super().__init__(str(error))
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error


def _microsoft_page(error: MicrosoftError) -> PageError:
    return PageError(ErrorPage(400, f"AADSTS{error.code}", error.description))


def _google_page(status: int, error: str, message: str, details: str = "") -> PageError:
    return PageError(ErrorPage(status, f"Error {status}: {error}", message, details))


def _param(query: Mapping[str, str], name: str) -> str | None:
    return query.get(name) or None


def _unconfigured(client: Client, scopes: tuple[str, ...]) -> list[str]:
    if client.allowed_scopes is None:
        return []
    return [s for s in scopes if s not in client.allowed_scopes and s.lower() not in OIDC_SCOPES]


def parse_microsoft(
    state: EmulatorState, segment: str, query: Mapping[str, str]
) -> AuthorizationRequest:
    """`GET /{tenant}/oauth2/v2.0/authorize` as Entra ID checks it."""
    try:
        resolve_tenant(state, segment)
    except MicrosoftError as err:
        raise _microsoft_page(err) from err
    client_id = _param(query, "client_id")
    if client_id is None:
        raise _microsoft_page(msg.MISSING_PARAMETER(parameter="client_id"))
    client = state.find_client("microsoft", client_id)
    if client is None:
        raise _microsoft_page(msg.APPLICATION_NOT_FOUND(client_id=client_id, tenant=segment))
    redirect_uri = _param(query, "redirect_uri")
    if redirect_uri is None:
        # v2.0: redirect_uri is optional when the app has one to fall back on.
        if not client.redirect_uris:
            raise _microsoft_page(msg.NO_REPLY_ADDRESS())
        redirect_uri = client.redirect_uris[0]
    elif redirect_uri not in client.redirect_uris:
        raise _microsoft_page(
            msg.REDIRECT_URI_MISMATCH(redirect_uri=redirect_uri, client_id=client_id)
        )
    state_param = _param(query, "state")

    def refuse(error: EmulatedError) -> RedirectError:
        return RedirectError(redirect_uri, state_param, error)

    response_type = _param(query, "response_type")
    if response_type is None:
        raise refuse(msg.MISSING_PARAMETER(parameter="response_type"))
    if response_type != "code":
        raise refuse(msg.UNSUPPORTED_RESPONSE_TYPE(response_type=response_type))
    # The emulator answers in the query only (form_post and fragment are not emulated).
    if _param(query, "response_mode") not in (None, "query"):
        raise refuse(msg.INVALID_PARAMETER(parameter="response_mode"))
    scopes = split_scope(_param(query, "scope"))
    if not scopes:
        raise refuse(msg.MISSING_PARAMETER(parameter="scope"))
    unconfigured = _unconfigured(client, scopes)
    if unconfigured:
        raise refuse(msg.SCOPE_INVALID(scope=join_scope(unconfigured)))
    challenge, method = _pkce(query)
    if method not in CHALLENGE_METHODS:
        raise refuse(msg.INVALID_PARAMETER(parameter="code_challenge_method"))
    prompt = frozenset(split_scope(_param(query, "prompt")))
    if not prompt <= MICROSOFT_PROMPTS:
        raise refuse(msg.INVALID_PARAMETER(parameter="prompt"))
    return AuthorizationRequest(
        provider="microsoft",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state_param,
        nonce=_param(query, "nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
        prompt=prompt,
        login_hint=_param(query, "login_hint"),
        tenant=segment,
    )


def parse_google(state: EmulatorState, query: Mapping[str, str]) -> AuthorizationRequest:
    """`GET /o/oauth2/v2/auth` as Google checks it: a bad request gets an error page."""
    for name in ("client_id", "redirect_uri", "response_type", "scope"):
        if _param(query, name) is None:
            # Unverified wording, patterned on the token endpoint's.
            raise _google_page(400, "invalid_request", f"Missing required parameter: {name}")
    client_id = query["client_id"]
    client = state.find_client("google", client_id)
    if client is None:
        # "Error 401: invalid_client" / "The OAuth client was not found."
        raise _google_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = query["redirect_uri"]
    if redirect_uri not in client.redirect_uris:
        # n8n-io/n8n#13943, outline/outline#7571: the page's text, word for word.
        raise _google_page(
            400,
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
            "policy. If you're the app developer, register the redirect URI in the Google Cloud "
            "Console.",
            f"Request details: redirect_uri={redirect_uri} flowName=GeneralOAuthFlow",
        )
    if query["response_type"] != "code":
        raise _google_page(
            400, "unsupported_response_type", f"Invalid response_type: {query['response_type']}"
        )
    scopes = split_scope(query["scope"])
    unconfigured = _unconfigured(client, scopes)
    if unconfigured:
        invalid = ", ".join(unconfigured)
        raise _google_page(
            400, "invalid_scope", f"Some requested scopes were invalid. {{invalid=[{invalid}]}}"
        )
    challenge, method = _pkce(query)
    if method not in CHALLENGE_METHODS:
        raise _google_page(400, "invalid_request", "Invalid code_challenge_method value.")
    access_type = _param(query, "access_type") or "online"
    if access_type not in ("online", "offline"):
        raise _google_page(400, "invalid_request", f"Invalid access_type: {access_type}")
    prompt = frozenset(split_scope(_param(query, "prompt")))
    if not prompt <= GOOGLE_PROMPTS:
        raise _google_page(400, "invalid_request", f"Invalid prompt: {join_scope(sorted(prompt))}")
    return AuthorizationRequest(
        provider="google",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=_param(query, "state"),
        nonce=_param(query, "nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
        prompt=prompt,
        login_hint=_param(query, "login_hint"),
        access_type=access_type,
        include_granted_scopes=_param(query, "include_granted_scopes") == "true",
    )


def parse(
    state: EmulatorState, provider: Provider, query: Mapping[str, str], segment: str = "common"
) -> AuthorizationRequest:
    """The provider's authorization request, or `PageError` / `RedirectError`."""
    if provider == "microsoft":
        return parse_microsoft(state, segment, query)
    return parse_google(state, query)


def _pkce(query: Mapping[str, str]) -> tuple[str | None, str]:
    challenge = _param(query, "code_challenge")
    # RFC 7636 §4.3: "Defaults to "plain" if not present in the request."
    method = _param(query, "code_challenge_method") or "plain"
    return challenge, method if challenge is not None else "plain"


def parse_url(state: EmulatorState, url: str) -> AuthorizationRequest:
    """An authorization URL as a browser would open it (any host; a mount prefix is fine)."""
    parts = urlsplit(url)
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, value)
    path = parts.path.rstrip("/")
    if path.endswith(_MICROSOFT_PATH):
        segment = path[: -len(_MICROSOFT_PATH)].rsplit("/", 1)[-1]
        return parse_microsoft(state, unquote(segment), query)
    if path.endswith(_GOOGLE_PATH):
        return parse_google(state, query)
    raise ValueError(f"not an authorization endpoint: {parts.path}")


_MICROSOFT_PATH = "/oauth2/v2.0/authorize"
_GOOGLE_PATH = "/o/oauth2/v2/auth"

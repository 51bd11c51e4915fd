"""Signing an account in: the authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636).

1. `begin` records a request — state, PKCE verifier, nonce — and returns a start link on
   mailgate's own base URL, valid for ten minutes.
2. Opening the start link shows what is about to happen (`look_at_start_link`) and changes
   nothing: link previews, mail scanners and Safe Links fetch links before people do. The person
   presses "Continue" (a POST no scanner sends), which binds the request to that browser with a
   cookie and redirects to the provider's authorization endpoint (`open_start_link`). The link
   belongs to the first browser that continues: that browser may continue again (a reload), any
   other is refused, so nobody who sees the link later can take the sign-in over.
3. The provider redirects back to `/oauth2/callback`; `complete` checks the state (known, unused,
   unexpired, same browser), exchanges the code with the verifier, verifies the id_token, and
   stores the credential. Each outcome says what happened and what to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx2
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import actor
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, OperationFailed
from mailgate.oauth import errors as provider_errors
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenRequestRefused, TokenResponse, request_token
from mailgate.oauth.idtoken import account_from_claims, verify_id_token
from mailgate.oauth.integrations import get_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import AuthorizationRequest, Credential, Integration
from mailgate.store.vocabulary import GrantType, SignInStatus

REQUEST_LIFETIME = timedelta(minutes=10)
BINDING_COOKIE = "mailgate_signin_{id}"
PROMPTS = ("login", "consent", "select_account", "none")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), without padding."""
    hashed = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(hashed).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Started:
    request_id: int
    start_url: str
    expires_at: datetime


@dataclass(frozen=True)
class Redirect:
    """Where the start link sends the browser, and the cookie that binds it."""

    url: str
    cookie_name: str
    cookie_value: str
    max_age: int


@dataclass(frozen=True)
class Outcome:
    """What the callback page tells the person who signed in."""

    ok: bool
    title: str
    message: str
    status_code: int = 200
    account: str | None = None
    credential_id: int | None = None
    integration: str | None = None  # its page links back to the integration


async def begin(
    ctx: Context, name: str, *, login_hint: str | None = None, prompt: str | None = None
) -> Started:
    """Record a sign-in request for integration `name` and return its start link."""
    ctx.settings.require_https_base_url()
    if login_hint is not None and not 0 < len(login_hint) <= 320:
        raise BadInput("The login hint must be an address of at most 320 characters.")
    if prompt is not None and prompt not in PROMPTS:
        raise BadInput(f"Unknown prompt {prompt!r}: use one of {', '.join(PROMPTS)}.")
    async with ctx.db.session() as session:
        integration = await get_integration(session, name)
        if not integration.authorization_endpoint:
            raise BadInput(
                f"Integration {name!r} has no authorization endpoint: set it with `mailgate "
                f"integration set {name} --authorization-endpoint URL`, or use --device."
            )
        start_token = secrets.token_urlsafe(32)
        now = ctx.clock()
        row = AuthorizationRequest(
            integration_id=integration.id,
            start_token_hash=digest(start_token),
            state_hash="",
            code_verifier_enc=ctx.secrets.encrypt(secrets.token_urlsafe(64)),
            nonce=secrets.token_urlsafe(24),
            redirect_uri=ctx.settings.redirect_url,
            login_hint=login_hint,
            prompt=prompt,
            started_by=actor.current().name[:400],  # the audit log names them, not the browser
            status=SignInStatus.PENDING,
            created_at=now,
            expires_at=now + REQUEST_LIFETIME,
        )
        # The state itself is made when the link is opened; until then a placeholder that
        # no callback can match.
        row.state_hash = digest("unopened:" + secrets.token_urlsafe(32))
        session.add(row)
        await session.commit()
    url = f"{ctx.settings.base_url}/oauth2/start?{urlencode({'request': start_token})}"
    return Started(request_id=row.id, start_url=url, expires_at=row.expires_at)


def _refused(title: str, message: str) -> Outcome:
    return Outcome(ok=False, title=title, message=message, status_code=400)


_TAKEN = (
    "Sign-in link opened in another browser",
    "This sign-in link was already opened in another browser, and it works only in the browser "
    "that continued with it first. Finish the sign-in there, or start a new one with `mailgate "
    "integration authorize NAME` and open its link in this browser.",
)


@dataclass(frozen=True)
class Confirm:
    """What the start link's page says before anything happens: where the person is going."""

    integration: str
    provider: str
    login_hint: str | None


_PROVIDER_NAMES = {"microsoft": "Microsoft", "google": "Google"}


async def _start_request(
    session: AsyncSession, start_token: str, now: datetime
) -> AuthorizationRequest | Outcome:
    """The pending request of a start link, or why the link cannot be used."""
    row = (
        await session.scalars(
            select(AuthorizationRequest).where(
                AuthorizationRequest.start_token_hash == digest(start_token)
            )
        )
    ).first()
    if row is None:
        return _refused(
            "Unknown sign-in link",
            "This link was not made by this mailgate. Start again with `mailgate integration "
            "authorize NAME` and open the link it prints.",
        )
    if row.status != SignInStatus.PENDING or row.used_at is not None:
        return _refused(
            "Sign-in link already used",
            "This sign-in has already ended. Start a new one with `mailgate integration "
            "authorize NAME`.",
        )
    if row.expires_at <= now:
        return _refused(
            "Sign-in link expired",
            "Sign-in links are valid for 10 minutes. Start a new one with `mailgate "
            "integration authorize NAME`.",
        )
    return row


async def look_at_start_link(
    ctx: Context, start_token: str, cookies: Mapping[str, str] | None = None
) -> Confirm | Outcome:
    """What opening the start link shows; it binds nothing and changes nothing."""
    async with ctx.db.session() as session:
        row = await _start_request(session, start_token, ctx.clock())
        if isinstance(row, Outcome):
            return row
        if _binding_of(row, cookies or {}) is None:
            return Outcome(False, *_TAKEN, status_code=403)
        integration = await session.get(Integration, row.integration_id)
        assert integration is not None
        provider = _PROVIDER_NAMES.get(integration.provider, "the identity provider")
        return Confirm(integration.name, provider, row.login_hint)


async def open_start_link(
    ctx: Context, start_token: str, cookies: Mapping[str, str] | None = None
) -> Redirect | Outcome:
    """Bind the request to this browser and send it to the provider's authorization endpoint.

    The first browser to continue binds it; later ones need that browser's binding cookie."""
    now = ctx.clock()
    async with ctx.db.session() as session:
        row = await _start_request(session, start_token, now)
        if isinstance(row, Outcome):
            return row
        binding = _binding_of(row, cookies or {})
        if binding is None:
            return Outcome(False, *_TAKEN, status_code=403)
        state = secrets.token_urlsafe(32)
        # Compare-and-set: of two browsers opening the link at once, one binds it.
        bound = await session.execute(
            update(AuthorizationRequest)
            .where(
                AuthorizationRequest.id == row.id,
                AuthorizationRequest.binding_hash.is_(None)
                if row.binding_hash is None
                else AuthorizationRequest.binding_hash == row.binding_hash,
            )
            .values(state_hash=digest(state), binding_hash=digest(binding))
            .execution_options(synchronize_session=False)
        )
        if not bound.rowcount:  # type: ignore[attr-defined]
            return Outcome(False, *_TAKEN, status_code=403)
        integration = await session.get(Integration, row.integration_id)
        assert integration is not None and integration.authorization_endpoint is not None
        verifier = ctx.secrets.decrypt(row.code_verifier_enc)
        params = {
            "client_id": integration.client_id,
            "response_type": "code",
            "redirect_uri": row.redirect_uri,
            "scope": " ".join(integration.scopes),
            "state": state,
            "nonce": row.nonce,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
            **{k: str(v) for k, v in integration.auth_params.items()},
        }
        if integration.provider == "microsoft":
            params["response_mode"] = "query"
        if integration.provider == "generic" and "offline_access" in integration.scopes:
            # OpenID Connect Core §11: offline_access is ignored unless prompt has consent.
            params.setdefault("prompt", "consent")
        if row.login_hint:
            params["login_hint"] = row.login_hint
        if row.prompt:
            params["prompt"] = row.prompt
        await session.commit()
        separator = "&" if "?" in integration.authorization_endpoint else "?"
        return Redirect(
            url=integration.authorization_endpoint + separator + urlencode(params),
            cookie_name=BINDING_COOKIE.format(id=row.id),
            cookie_value=binding,
            max_age=max(1, int((row.expires_at - now).total_seconds())),
        )


def _binding_of(row: AuthorizationRequest, cookies: Mapping[str, str]) -> str | None:
    """The browser binding for this opening: a new one at the first, the browser's own cookie
    at a later one from the same browser, None for any other browser."""
    if row.binding_hash is None:
        return secrets.token_urlsafe(32)
    cookie = cookies.get(BINDING_COOKIE.format(id=row.id))
    if cookie is not None and hmac.compare_digest(digest(cookie), row.binding_hash):
        return cookie
    return None


async def _claim(
    ctx: Context, state: str, cookies: dict[str, str]
) -> AuthorizationRequest | Outcome:
    """The request this state belongs to, marked used; or why the callback is refused."""
    now = ctx.clock()
    async with ctx.db.session() as session:
        row = (
            await session.scalars(
                select(AuthorizationRequest).where(AuthorizationRequest.state_hash == digest(state))
            )
        ).first()
        if row is None:
            return _refused(
                "Unknown sign-in",
                "This answer does not belong to a sign-in started here (the state is unknown). "
                "Start again with `mailgate integration authorize NAME`.",
            )
        if row.used_at is not None:
            return _refused(
                "Sign-in already completed",
                "This answer was already used once (a reload or a replay). Nothing was changed; "
                "`mailgate credential list` shows the result. To sign in again, start with "
                "`mailgate integration authorize NAME`.",
            )
        if row.expires_at <= now:
            await _finish(ctx, row.id, SignInStatus.FAILED, "expired")
            return _refused(
                "Sign-in expired",
                "More than 10 minutes passed since the sign-in started. Start again with "
                "`mailgate integration authorize NAME`.",
            )
        binding = cookies.get(BINDING_COOKIE.format(id=row.id))
        if binding is None or digest(binding) != row.binding_hash:
            return _refused(
                "Sign-in started in another browser",
                "This answer arrived in a browser that did not open the sign-in link. Finish the "
                "sign-in in the browser that opened it, or start a new one with `mailgate "
                "integration authorize NAME`.",
            )
        claimed = await session.execute(
            update(AuthorizationRequest)
            .where(AuthorizationRequest.id == row.id, AuthorizationRequest.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return _refused(
                "Sign-in already completed",
                "This answer was already used once. `mailgate credential list` shows the result.",
            )
        return row


async def _finish(
    ctx: Context, request_id: int, status: str, outcome: str, credential_id: int | None = None
) -> None:
    async with ctx.db.session() as session:
        row = await session.get(AuthorizationRequest, request_id)
        assert row is not None
        row.status = status
        row.outcome = outcome
        row.credential_id = credential_id
        await session.commit()


async def complete(
    ctx: Context,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    error_description: str | None,
    cookies: dict[str, str],
) -> Outcome:
    """Handle the provider's redirect to `/oauth2/callback`."""
    if not state:
        return _refused(
            "Missing state",
            "The provider's answer carries no state, so mailgate cannot tell which sign-in it "
            "belongs to. Start again with `mailgate integration authorize NAME`.",
        )
    claimed = await _claim(ctx, state, cookies)
    if isinstance(claimed, Outcome):
        return claimed
    request = claimed
    async with ctx.db.session() as session:
        integration = await session.get(Integration, request.integration_id)
        assert integration is not None
    if error:
        refusal = provider_errors.ProviderError(
            error, error_description or "", 400, integration.authorization_endpoint or ""
        )
        message = provider_errors.explain(refusal, provider=integration.provider)
        await _finish(ctx, request.id, SignInStatus.FAILED, message)
        return _refused("The provider refused the sign-in", message)
    if not code:
        message = "The provider's answer has neither a code nor an error. Start the sign-in again."
        await _finish(ctx, request.id, SignInStatus.FAILED, message)
        return _refused("No authorization code", message)
    try:
        outcome = await _exchange(ctx, integration, request, code)
    except MailgateError as exc:
        await _finish(ctx, request.id, SignInStatus.FAILED, str(exc))
        return _refused("Sign-in failed", str(exc))
    except Exception:
        # The state is spent: record the failure so the waiting command ends, then let the
        # server log the error.
        message = "mailgate failed while completing the sign-in; its log has the details."
        await _finish(ctx, request.id, SignInStatus.FAILED, message)
        raise
    await _finish(
        ctx, request.id, SignInStatus.COMPLETED, outcome.account or "", outcome.credential_id
    )
    return outcome


async def _exchange(
    ctx: Context, integration: Integration, request: AuthorizationRequest, code: str
) -> Outcome:
    client = TokenKeeper(ctx).client_config(integration)
    try:
        response = await request_token(
            client,
            GrantType.AUTHORIZATION_CODE,
            code=code,
            redirect_uri=request.redirect_uri,
            code_verifier=ctx.secrets.decrypt(request.code_verifier_enc),
        )
    except TokenRequestRefused as refused:
        raise provider_errors.as_exception(
            refused.error, provider_errors.explain(refused.error, provider=integration.provider)
        ) from None
    account = await identify(ctx, integration, response, nonce=request.nonce)
    account = account or (request.login_hint or "").lower() or None
    if account is None:
        raise BadInput(
            "The provider did not say which account signed in (no id_token): add the openid and "
            f"email scopes to integration {integration.name!r}, or authorize with --login-hint."
        )
    # The account owner at the callback may have no mailgate login: the audit log names who
    # started the sign-in (an admin on a page, or `cli:LOGIN`).
    actor.act_as(actor.Actor(request.started_by or "anonymous", actor.current().address))
    credential = await store_grant(
        ctx, integration, account, GrantType.AUTHORIZATION_CODE, response
    )
    warning = ""
    if not response.refresh_token:
        warning = (
            " The provider returned no refresh token, so access ends when this token expires: "
            "Microsoft needs the offline_access scope, Google access_type=offline with "
            "prompt=consent."
        )
    return Outcome(
        ok=True,
        title=f"Connected as {account}",
        message=f"Integration {integration.name} can now act for {account} (credential "
        f"{credential.id}). You can close this page.{warning}",
        account=account,
        credential_id=credential.id,
        integration=integration.name,
    )


async def identify(
    ctx: Context, integration: Integration, response: TokenResponse, *, nonce: str | None
) -> str | None:
    """The signed-in account from a verified id_token, else from userinfo when available."""
    if response.id_token and integration.jwks_uri and integration.issuer:
        claims = await verify_id_token(
            response.id_token,
            jwks_uri=integration.jwks_uri,
            issuer=integration.issuer,
            provider=integration.provider,
            client_id=integration.client_id,
            nonce=nonce,
            now=ctx.clock(),
            http=ctx.http,
        )
        account = account_from_claims(claims)
        if account:
            return account
    if integration.userinfo_endpoint and "openid" in integration.scopes:
        # Best effort: the exchange already succeeded; without an answer, the login hint names
        # the account.
        try:
            async with ctx.http() as http:
                answer = await http.get(
                    integration.userinfo_endpoint,
                    headers={"Authorization": f"Bearer {response.access_token}"},
                )
            info = answer.json() if answer.status_code == 200 else None
            if isinstance(info, dict):
                return account_from_claims(info)
        except (httpx2.HTTPError, ValueError):
            return None
    return None


async def prune(ctx: Context, keep: timedelta = timedelta(days=7)) -> int:
    """Delete sign-in requests that ended (or expired) more than `keep` ago."""
    async with ctx.db.session() as session:
        result = await session.execute(
            delete(AuthorizationRequest).where(AuthorizationRequest.expires_at < ctx.clock() - keep)
        )
        await session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


async def wait_for(ctx: Context, started: Started, poll_interval: float = 1.0) -> Credential:
    """Wait until the sign-in started by `begin` completes (in `mailgate serve`), or fails."""
    while True:
        async with ctx.db.session() as session:
            row = await session.get(
                AuthorizationRequest, started.request_id, populate_existing=True
            )
            assert row is not None
            if row.status == SignInStatus.COMPLETED and row.credential_id is not None:
                credential = await session.get(Credential, row.credential_id)
                assert credential is not None
                return credential
        if row.status == SignInStatus.FAILED:
            raise OperationFailed(f"The sign-in failed: {row.outcome}")
        # A callback still exchanging the code at the deadline gets a minute more.
        if ctx.clock() > row.expires_at + (timedelta(minutes=1) if row.used_at else timedelta()):
            raise OperationFailed(
                "Nobody completed the sign-in within 10 minutes: run the command again."
            )
        await ctx.sleep(poll_interval)

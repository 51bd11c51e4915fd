"""The token keeper: a valid access token for every credential, without anyone watching.

Rules (each one a way peers lost mail):
- Access tokens are refreshed `refresh_margin` before they expire, not after a failure.
- A refresh that returns a new refresh token stores it in the same transaction as the new access
  token, before that access token is handed out. Microsoft rotates refresh tokens; the old one
  keeps working until it expires, so a crash between the response and the commit loses nothing:
  the next refresh uses the old token again.
- One refresh per credential at a time: coroutines of one process share one in-flight refresh,
  and processes share a lease row (a conditional UPDATE that works on SQLite and PostgreSQL).
  The lease runs out on the database's clock (`store/dbtime.py`), never a host's: with hosts
  whose clocks differ by more than the lease, one would take the other's lease while its
  refresh is in flight, and of two refresh tokens rotated at once, one is lost. When a token is
  due stays the keeper's own decision, on its clock.
- `scope` is sent on every refresh (Microsoft answers AADSTS900144 without it).
- A credential nobody used for `idle_refresh_after` is refreshed anyway, well inside Microsoft's
  90-day inactivity limit.
- `invalid_grant` → needs-reauthorization, with the provider's text; the refresh token is kept.
  Network errors and 5xx → refresh-failing, retried with exponential backoff and jitter.
  `invalid_client` → the integration is flagged until it gets a new secret.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from mailgate import metrics
from mailgate.backoff import delay
from mailgate.context import Context
from mailgate.errors import (
    BadInput,
    ClientRejected,
    MailgateError,
    NeedsAdmin,
    NeedsReauthorization,
    NotFound,
    Transient,
)
from mailgate.http import DEFAULT_TIMEOUT
from mailgate.logs import Secret
from mailgate.oauth import errors as provider_errors
from mailgate.oauth.endpoint import ClientConfig, TokenRequestRefused, TokenResponse, request_token
from mailgate.store.dbtime import database_now
from mailgate.store.models import Credential, CredentialEvent, Integration
from mailgate.store.vocabulary import CredentialEventKind, CredentialStatus, GrantType
from mailgate.store.webhooks import credential_needs_attention

log = structlog.get_logger(__name__)

ACTIVE = CredentialStatus.ACTIVE
NEEDS_REAUTHORIZATION = CredentialStatus.NEEDS_REAUTHORIZATION
REFRESH_FAILING = CredentialStatus.REFRESH_FAILING
REVOKED = CredentialStatus.REVOKED

# Which status may follow which, as the keeper moves them. A revoked credential comes back only
# by authorizing again (`store_grant`), never by a refresh.
TRANSITIONS: dict[str, frozenset[str]] = {
    ACTIVE: frozenset({ACTIVE, REFRESH_FAILING, NEEDS_REAUTHORIZATION, REVOKED}),
    REFRESH_FAILING: frozenset({ACTIVE, REFRESH_FAILING, NEEDS_REAUTHORIZATION, REVOKED}),
    NEEDS_REAUTHORIZATION: frozenset({ACTIVE, REFRESH_FAILING, NEEDS_REAUTHORIZATION, REVOKED}),
    REVOKED: frozenset({REVOKED}),
}


class IllegalTransition(MailgateError):
    """A credential status change the state table does not allow (a bug, not user input)."""


def transition(current: str, new: str) -> str:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"A credential cannot go from {current} to {new}.")
    return new


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh and how long to back off. Pure: give it the time."""

    refresh_margin: timedelta = timedelta(minutes=5)
    idle_refresh_after: timedelta = timedelta(days=7)
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(hours=1)
    default_lifetime: timedelta = timedelta(hours=1)

    def access_token_fresh(self, expires_at: datetime | None, now: datetime) -> bool:
        return expires_at is not None and expires_at - self.refresh_margin > now

    def idle(self, last_refresh_at: datetime | None, now: datetime) -> bool:
        return last_refresh_at is None or now - last_refresh_at >= self.idle_refresh_after

    def backoff(self, failures: int, rng: random.Random) -> timedelta:
        """Exponential backoff with jitter: base·2^(n-1), capped, times a factor in [0.5, 1]."""
        seconds = delay(
            failures, self.backoff_base.total_seconds(), self.backoff_max.total_seconds(), rng
        )
        return timedelta(seconds=seconds)

    def expires_at(self, response: TokenResponse, now: datetime) -> datetime:
        if response.expires_in is None:
            return now + self.default_lifetime
        return now + timedelta(seconds=response.expires_in)


@dataclass(frozen=True)
class AccessToken(Secret):
    """An access token to hand to a mail server. The value is hidden from repr and logs."""

    credential_id: int
    account: str
    expires_at: datetime
    value: str = field(repr=False)


@dataclass
class UpkeepReport:
    refreshed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


BeforeCommit = Callable[[Credential], Awaitable[None]]


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TokenKeeper:
    """Hands out access tokens and keeps every credential refreshed."""

    def __init__(
        self,
        ctx: Context,
        *,
        policy: RefreshPolicy | None = None,
        owner: str | None = None,
        lease_duration: timedelta = timedelta(seconds=60),
        lease_poll_interval: float = 0.1,
        rng: random.Random | None = None,
        before_commit: BeforeCommit | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.ctx = ctx
        self.policy = policy or RefreshPolicy()
        self.owner = owner or default_owner()
        self.lease_duration = lease_duration
        self.lease_poll_interval = lease_poll_interval
        self.rng = rng or random.Random()
        self._before_commit = before_commit
        self.request_timeout = request_timeout
        self._inflight: dict[int, asyncio.Task[AccessToken]] = {}
        self._cache: dict[int, AccessToken] = {}

    # -- handing out tokens ------------------------------------------------------------------

    async def access_token(self, credential_id: int) -> AccessToken:
        """A valid access token for the credential, refreshing first when it is about to expire."""
        now = self.ctx.clock()
        cached = self._cache.get(credential_id)
        if cached is not None and self.policy.access_token_fresh(cached.expires_at, now):
            return cached
        return await self._single_flight(credential_id)

    async def refresh(self, credential_id: int) -> AccessToken:
        """Refresh now, whatever the token's age or the backoff (`credential refresh`)."""
        return await self._single_flight(credential_id, mode="force")

    async def replace_refused(self, refused: AccessToken) -> AccessToken:
        """A token to use instead of one a mail server refused: one refresh per refused token.

        A newer token than the refused one (refreshed meanwhile here or by another process) is
        used without a request; a credential backing off after failed refreshes is not
        refreshed before its next attempt (raises `Transient` saying when) — a mailbox
        reconnecting every few seconds would otherwise ask a failing endpoint each time.
        """
        credential_id, value = refused.credential_id, refused.value
        return await self._single_flight(credential_id, mode="refused", refused=value)

    def invalidate(self, credential_id: int) -> None:
        """Forget the cached token (a mail server refused it)."""
        self._cache.pop(credential_id, None)

    async def _single_flight(
        self, credential_id: int, *, mode: str = "use", refused: str | None = None
    ) -> AccessToken:
        """One refresh at a time per credential in this process; the arguments as `_obtain`'s.

        The work runs in its own task and every caller awaits it shielded, so a caller that is
        cancelled (a mailbox loop stopping) does not cancel the others waiting on it. Joining
        work that hands back the very token a caller replaces, it starts its own once.
        """
        for _ in range(2):
            task = self._inflight.get(credential_id)
            joined = task is not None
            if task is None:
                task = asyncio.create_task(self._obtain(credential_id, mode=mode, refused=refused))
                self._inflight[credential_id] = task
                task.add_done_callback(lambda done: self._settled(credential_id, done))
            token = await asyncio.shield(task)
            if not joined or refused is None or token.value != refused:
                return token
        return token

    def _settled(self, credential_id: int, task: asyncio.Task[AccessToken]) -> None:
        self._inflight.pop(credential_id, None)
        if task.cancelled():
            return
        if task.exception() is None:  # also marks an exception as retrieved
            self._cache[credential_id] = task.result()

    async def _obtain(
        self, credential_id: int, *, mode: str, refused: str | None = None
    ) -> AccessToken:
        """Return a fresh token from the database, or refresh under the lease.

        `mode`: "use" refreshes only a token about to expire; "force" always refreshes;
        "upkeep" refreshes only what is still due once the lease is held, so workers on
        several hosts that found the same credential due refresh it once; "refused" replaces
        the token `refused` (`replace_refused`), checked again once the lease is held.
        """
        structlog.contextvars.bind_contextvars(credential=credential_id)  # this task's lines
        deadline = self.ctx.clock() + self.lease_duration * 2
        while True:
            now = self.ctx.clock()
            cred = await self._load(credential_id)
            usable = self._without_refresh(cred, now, mode, refused)
            if usable is not None:
                return usable
            if await self._claim_lease(credential_id):
                break
            if now > deadline:
                raise Transient(
                    f"Credential {credential_id} is being refreshed by another process that does "
                    "not finish; mailgate will retry."
                )
            # Another process holds the lease: wait for its result instead of a second request.
            await self.ctx.sleep(self.lease_poll_interval)
        try:
            cred = await self._load(credential_id)
            now = self.ctx.clock()
            if cred.status == REVOKED or (cred.status == NEEDS_REAUTHORIZATION and mode != "force"):
                self._usable(cred, now)  # raises, saying what to do
            usable = self._without_refresh(cred, now, mode, refused)
            if usable is not None:
                return usable
            if mode == "upkeep" and not self._due(cred, now) and cred.access_token_enc:
                return self._token_of(cred)
            with metrics.refresh_counted(cred.id):
                return await self._refresh_under_lease(cred)
        finally:
            await self._release_lease(credential_id)

    def _without_refresh(
        self, cred: Credential, now: datetime, mode: str, refused: str | None
    ) -> AccessToken | None:
        """The token `mode` hands out without a request, if any; raises as `_usable` does, and
        while the credential backs off when the stored token is the refused one."""
        if mode not in ("use", "refused"):
            return None
        stored = self._usable(cred, now)
        if mode == "use" or (stored is not None and stored.value != refused):
            return stored
        if cred.status == REFRESH_FAILING and cred.next_attempt_at and cred.next_attempt_at > now:
            raise Transient(
                f"Credential {cred.id} ({cred.account}): the mail server refused its access "
                f"token; retrying at {cred.next_attempt_at:%H:%M:%S} UTC, as the last refresh "
                f"failed: {cred.last_error}"
            )
        return None

    def _usable(self, cred: Credential, now: datetime) -> AccessToken | None:
        """The stored token if fresh; raises when the status says a refresh would be wrong."""
        if cred.status == REVOKED:
            raise NeedsReauthorization(
                f"Credential {cred.id} ({cred.account}) was revoked: authorize the account again "
                "with `mailgate integration authorize`."
            )
        if cred.status == NEEDS_REAUTHORIZATION:
            raise NeedsReauthorization(
                f"Credential {cred.id} ({cred.account}) needs to be authorized again: "
                f"{cred.last_error or 'the provider refused the grant'}"
            )
        if cred.access_token_enc and self.policy.access_token_fresh(cred.expires_at, now):
            return self._token_of(cred)
        if cred.status == REFRESH_FAILING and cred.next_attempt_at and cred.next_attempt_at > now:
            # Backing off: a token that has not yet expired still works meanwhile.
            if cred.access_token_enc and cred.expires_at and cred.expires_at > now:
                return self._token_of(cred)
            raise Transient(
                f"Credential {cred.id} ({cred.account}) cannot be refreshed right now "
                f"({cred.last_error}); the next try is at {cred.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        return None

    def _token_of(self, cred: Credential) -> AccessToken:
        assert cred.access_token_enc is not None and cred.expires_at is not None
        return AccessToken(
            credential_id=cred.id,
            account=cred.account,
            expires_at=cred.expires_at,
            value=self.ctx.secrets.decrypt(cred.access_token_enc),
        )

    # -- the lease ---------------------------------------------------------------------------

    async def _claim_lease(self, credential_id: int) -> bool:
        async with self.ctx.db.session() as session:
            result = await session.execute(
                update(Credential)
                .where(
                    Credential.id == credential_id,
                    or_(
                        Credential.lease_until.is_(None),
                        Credential.lease_until < database_now(),
                        Credential.lease_owner == self.owner,
                    ),
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=database_now(self.lease_duration.total_seconds()),
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _release_lease(self, credential_id: int) -> None:
        async with self.ctx.db.session() as session:
            await session.execute(
                update(Credential)
                .where(Credential.id == credential_id, Credential.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    # -- refreshing --------------------------------------------------------------------------

    async def _load(self, credential_id: int) -> Credential:
        async with self.ctx.db.session() as session:
            cred = await session.get(Credential, credential_id, populate_existing=True)
            if cred is None:
                raise NotFound(
                    f"No credential {credential_id}: `mailgate credential list` shows the ones "
                    "there are."
                )
            return cred

    async def _integration(self, integration_id: int) -> Integration:
        async with self.ctx.db.session() as session:
            row = await session.get(Integration, integration_id)
            assert row is not None  # the foreign key guarantees it
            return row

    def client_config(self, integration: Integration) -> ClientConfig:
        secret = (
            self.ctx.secrets.decrypt(integration.client_secret_enc)
            if integration.client_secret_enc
            else None
        )
        return ClientConfig(
            provider=integration.provider,
            client_id=integration.client_id,
            token_endpoint=integration.token_endpoint,
            token_auth=integration.token_auth,
            client_secret=secret,
        )

    async def _refresh_under_lease(self, cred: Credential) -> AccessToken:
        integration = await self._integration(cred.integration_id)
        client = self.client_config(integration)
        grant: str  # the grant_type sent to the token endpoint
        if cred.grant_type == GrantType.CLIENT_CREDENTIALS:
            if not client.client_secret:
                raise BadInput(
                    f"Integration {integration.name!r} has no client secret, and client "
                    "credentials need one: add it with `mailgate integration set "
                    f"{integration.name} --client-secret-file FILE`."
                )
            grant, params = (
                GrantType.CLIENT_CREDENTIALS,
                {"scope": " ".join(integration.app_scopes)},
            )
        else:
            if not cred.refresh_token_enc:
                message = (
                    "the provider gave no refresh token, so the access token cannot be renewed: "
                    "authorize the account again (Microsoft needs the offline_access scope, "
                    "Google access_type=offline with prompt=consent)"
                )
                await self._mark_needs_reauthorization(cred, message)
                raise NeedsReauthorization(f"Credential {cred.id} ({cred.account}): {message}.")
            grant = "refresh_token"
            params = {
                "refresh_token": self.ctx.secrets.decrypt(cred.refresh_token_enc),
                # Always send scope: Microsoft refuses a refresh without it (AADSTS900144).
                "scope": " ".join(integration.scopes or cred.scopes),
            }
        try:
            # However slow the provider, the request ends well inside the lease, so no other
            # process starts a second refresh while this one may still succeed.
            async with asyncio.timeout(self.lease_duration.total_seconds() / 2):
                response = await request_token(
                    client, grant, timeout=self.request_timeout, **params
                )
        except TokenRequestRefused as refused:
            raise await self._record_refusal(cred, integration, refused.error) from None
        except TimeoutError:
            message = (
                f"The token endpoint {client.token_endpoint} did not answer within "
                f"{self.lease_duration.total_seconds() / 2:.0f} s; mailgate will retry."
            )
            await self._record_failure(cred, message)
            raise Transient(message) from None
        except Transient as exc:
            await self._record_failure(cred, str(exc))
            raise
        return await self._store(cred, response, used_refresh_token=params.get("refresh_token"))

    async def _store(
        self, cred: Credential, response: TokenResponse, *, used_refresh_token: str | None
    ) -> AccessToken:
        now = self.ctx.clock()
        expires_at = self.policy.expires_at(response, now)
        async with self.ctx.db.session() as session:
            row = await session.get(Credential, cred.id, populate_existing=True)
            assert row is not None
            current = (
                self.ctx.secrets.decrypt(row.refresh_token_enc) if row.refresh_token_enc else None
            )
            if row.status == REVOKED or (used_refresh_token and current != used_refresh_token):
                # Revoked, or authorized again, while this refresh was in flight: what is
                # stored now wins; this answer belongs to a grant that is no longer ours.
                log.warning("refresh result discarded", credential=cred.id, status=row.status)
                if row.status == REVOKED or not row.access_token_enc or not row.expires_at:
                    raise NeedsReauthorization(
                        f"Credential {cred.id} ({cred.account}) changed while it was being "
                        "refreshed (revoked or authorized again): ask for its token again."
                    )
                return self._token_of(row)
            previous = row.status
            row.status = transition(row.status, ACTIVE)
            row.access_token_enc = self.ctx.secrets.encrypt(response.access_token)
            row.expires_at = expires_at
            if response.refresh_token:
                # Rotation: the new refresh token is committed with the access token, before
                # the access token is used anywhere.
                row.refresh_token_enc = self.ctx.secrets.encrypt(response.refresh_token)
                row.refresh_token_issued_at = now
            row.last_refresh_at = now
            row.last_error = None
            row.failure_count = 0
            row.next_attempt_at = None
            if previous != ACTIVE:
                session.add(
                    CredentialEvent(
                        credential_id=row.id,
                        at=now,
                        kind=CredentialEventKind.RECOVERED,
                        detail=f"refreshed after {previous}",
                    )
                )
            if self._before_commit is not None:
                await self._before_commit(row)
            await session.commit()
        log.info("credential refreshed", credential=cred.id, rotated=bool(response.refresh_token))
        return AccessToken(
            credential_id=cred.id,
            account=cred.account,
            expires_at=expires_at,
            value=response.access_token,
        )

    async def _record_refusal(
        self, cred: Credential, integration: Integration, error: provider_errors.ProviderError
    ) -> MailgateError:
        now = self.ctx.clock()
        age_days = None
        if cred.refresh_token_issued_at is not None:
            age_days = (now - cred.refresh_token_issued_at).total_seconds() / 86400
        message = provider_errors.explain(
            error, provider=integration.provider, grant_age_days=age_days
        )
        kind = provider_errors.disposition(error)
        if kind is provider_errors.Disposition.REAUTHORIZE:
            await self._mark_needs_reauthorization(cred, message)
            return NeedsReauthorization(f"Credential {cred.id} ({cred.account}): {message}")
        if kind is provider_errors.Disposition.CLIENT:
            async with self.ctx.db.session() as session:
                row_i = await session.get(Integration, integration.id, populate_existing=True)
                assert row_i is not None
                row_i.client_error = message
                await session.commit()
            log.error("integration client refused", integration=integration.name, reason=message)
        await self._record_failure(cred, message)
        if kind is provider_errors.Disposition.CLIENT:
            return ClientRejected(f"Integration {integration.name!r}: {message}")
        if kind is provider_errors.Disposition.RETRY:
            return Transient(message)
        return NeedsAdmin(f"Credential {cred.id} ({cred.account}): {message}")

    async def _mark_needs_reauthorization(self, cred: Credential, message: str) -> None:
        now = self.ctx.clock()
        async with self.ctx.db.session() as session:
            row = await session.get(Credential, cred.id, populate_existing=True)
            assert row is not None
            previous = row.status
            row.status = transition(row.status, NEEDS_REAUTHORIZATION)
            row.last_error = message
            row.next_attempt_at = None
            # The refresh token is kept: re-authorizing replaces it, and a provider-side
            # fix (consent granted) can make it work again on `credential refresh`.
            session.add(
                CredentialEvent(
                    credential_id=row.id,
                    at=now,
                    kind=CredentialEventKind.NEEDS_REAUTHORIZATION,
                    detail=message,
                )
            )
            if previous != NEEDS_REAUTHORIZATION:
                await session.flush()
                await session.run_sync(credential_needs_attention, now, row.id)
            await session.commit()
        log.warning("credential needs reauthorization", credential=cred.id, reason=message)
        self.invalidate(cred.id)

    async def _record_failure(self, cred: Credential, message: str) -> None:
        now = self.ctx.clock()
        async with self.ctx.db.session() as session:
            row = await session.get(Credential, cred.id, populate_existing=True)
            assert row is not None
            previous = row.status
            row.status = transition(row.status, REFRESH_FAILING)
            row.failure_count += 1
            row.next_attempt_at = now + self.policy.backoff(row.failure_count, self.rng)
            row.last_error = message
            if previous != REFRESH_FAILING:
                session.add(
                    CredentialEvent(
                        credential_id=row.id,
                        at=now,
                        kind=CredentialEventKind.REFRESH_FAILING,
                        detail=message,
                    )
                )
                await session.flush()
                await session.run_sync(credential_needs_attention, now, row.id)
            await session.commit()
        log.warning(
            "credential refresh failed",
            credential=cred.id,
            reason=message,
            failures=row.failure_count,
            next_attempt_at=row.next_attempt_at.isoformat(),
        )

    # -- upkeep --------------------------------------------------------------------------------

    def _due(self, cred: Credential, now: datetime) -> bool:
        """Whether upkeep should refresh this credential now."""
        if cred.status == REFRESH_FAILING:
            return cred.next_attempt_at is None or cred.next_attempt_at <= now
        if cred.status == ACTIVE and cred.refresh_token_enc:
            last = cred.last_refresh_at or cred.refresh_token_issued_at or cred.created_at
            return self.policy.idle(last, now)
        return False

    async def due_credentials(self) -> list[int]:
        """Credentials to refresh now: idle ones, and failing ones whose backoff is over."""
        now = self.ctx.clock()
        async with self.ctx.db.session() as session:
            rows = (
                await session.scalars(
                    select(Credential).where(Credential.status.in_((ACTIVE, REFRESH_FAILING)))
                )
            ).all()
        return [cred.id for cred in rows if self._due(cred, now)]

    async def upkeep(self) -> UpkeepReport:
        """Refresh every credential that is due; failures are recorded, not raised."""
        report = UpkeepReport()
        for credential_id in await self.due_credentials():
            try:
                await self._single_flight(credential_id, mode="upkeep")
            except MailgateError:
                report.failed.append(credential_id)
            else:
                report.refreshed.append(credential_id)
        return report

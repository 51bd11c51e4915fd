"""`mailbox test`: connect, authenticate and look at the mailbox, step by step.

Steps, in order (as `mailbox test --json` names them): resolve, connect, tls, greeting, token,
authenticate, select (stat for POP3), count. The steps after a failed one are not run; every
failure gets a diagnosis from `mail/diagnose.py`. The steps drive the clients the mailbox loops
use (`mail/imap.py`, `mail/pop3.py`) and sign in as the loops do (`runtime/connect.py`): a token
the keeper considered valid that the server refuses is refreshed once and tried once more —
never more.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from mailgate.context import Context
from mailgate.errors import MailgateError, OperationFailed
from mailgate.inbound.mailboxes import get_mailbox
from mailgate.mail import imap, pop3, sasl
from mailgate.mail.connection import ConnectionLost, NoAnswer, NotConnected, TlsFailed
from mailgate.mail.diagnose import Failure, diagnose
from mailgate.mail.errors import MailError
from mailgate.mail.imap import ImapClient
from mailgate.mail.pop3 import Pop3Client
from mailgate.mail.tls import CaFileUnusable, tls_context_for
from mailgate.oauth.access import authenticate_with_refresh
from mailgate.oauth.tokens import AccessToken, TokenKeeper
from mailgate.runtime.connect import mechanism_for, sign_in
from mailgate.steps import StepListener, StepReport
from mailgate.store.models import Mailbox

TIMEOUT = 15.0

ProbeResult = StepReport


async def probe(
    ctx: Context,
    name: str,
    keeper: TokenKeeper | None = None,
    on_step: StepListener | None = None,
) -> ProbeResult:
    """Run the test-connection steps for mailbox `name`; `on_step` hears each step as it is
    recorded. Cancelled (the admin left the page), it closes the connection without a LOGOUT."""
    async with ctx.db.session() as session:
        mailbox = await get_mailbox(session, name)
    run = _Probe(ctx, keeper or TokenKeeper(ctx), mailbox, ProbeResult(on_step=on_step))
    try:
        return await run.steps()
    except asyncio.CancelledError:
        run.lost = True  # stopped in the middle of a command: its answer would come before LOGOUT's
        raise
    finally:
        await run.close()


class _Probe:
    """One run of the steps, and the connection they build."""

    def __init__(
        self, ctx: Context, keeper: TokenKeeper, mailbox: Mailbox, result: ProbeResult
    ) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.mailbox = mailbox
        self.client_type: type[ImapClient] | type[Pop3Client] = (
            ImapClient if mailbox.protocol == "imap" else Pop3Client
        )
        self.client: ImapClient | Pop3Client | None = None
        self.token: AccessToken | None = None
        self.lost = False  # the connection broke: nothing more to say on it
        self.result = result

    async def steps(self) -> ProbeResult:
        steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("tls", self.tls),
            ("greeting", self.greeting),
            ("token", self.take_token),
            ("authenticate", self.authenticate),
            ("select" if self.mailbox.protocol == "imap" else "stat", self.select),
            ("count", self.count),
        ]
        for step, action in steps:
            try:
                detail = await action()
            except MailgateError as exc:
                self.fail(step, exc)
                break
            self.result.record(step, True, detail)
        return self.result

    def fail(self, step: str, exc: MailgateError) -> None:
        self.lost = isinstance(exc, ConnectionLost)
        if step == "authenticate" and not isinstance(exc, MailError | ConnectionLost):
            step = "token"  # the refresh after a refusal failed: the keeper explains why
        detail, kind = _observed(step, self.mailbox.protocol, exc)
        self.result.fail(
            step,
            detail,
            diagnose(
                Failure(
                    step=step,
                    protocol=self.mailbox.protocol,
                    host=self.mailbox.host,
                    port=self.mailbox.port,
                    text=detail,
                    auth="oauth2" if self.mailbox.credential_id else "password",
                    challenge=getattr(exc, "challenge", None),
                    account=self.token.account if self.token else None,
                    username=self.mailbox.username,
                    kind=kind,
                )
            ),
        )

    async def close(self) -> None:
        if self.client is not None:
            if self.client.greeting and not self.lost:
                await self.client.logout()
            await self.client.close()

    def _connected(self) -> ImapClient | Pop3Client:
        assert self.client is not None, "the connect step comes first"
        return self.client

    # -- the steps ---------------------------------------------------------------------------

    async def resolve(self) -> str:
        host, port = self.mailbox.host, self.mailbox.port
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise OperationFailed(f"{host} does not resolve ({exc.strerror})") from None
        return f"{host} is {', '.join(sorted({str(info[4][0]) for info in infos}))}"

    async def connect(self) -> str:
        clock = asyncio.get_running_loop()
        started = clock.time()
        self.client = await self.client_type.open(
            self.mailbox.host, self.mailbox.port, timeout=TIMEOUT
        )
        took = (clock.time() - started) * 1000
        return f"connected to {self.client.connection.peer} in {took:.0f} ms"

    async def tls(self) -> str:
        if self.mailbox.security == "none":
            return "no TLS (--security none, loopback only)"
        client = self._connected()
        await client.secure(self.mailbox.security, tls_context_for(self.mailbox))
        return client.connection.tls_summary()

    async def greeting(self) -> str:
        client = self._connected()
        await client.greet()
        if isinstance(client, ImapClient):
            offered = ", ".join(sorted(client.sasl_mechanisms)) or "none"
            idle = "IDLE" if "IDLE" in client.capabilities else "no IDLE"
            return f"{client.greeting.strip()}; SASL {offered}; {idle}"
        offered = ", ".join(client.capabilities.get("SASL", [])) or "none"
        return f"{client.greeting.strip()}; SASL {offered}"

    async def take_token(self) -> str:
        if self.mailbox.credential_id is None:
            return "password authentication (no token)"
        self.token = await self.keeper.access_token(self.mailbox.credential_id)
        return (
            f"access token of {self.token.account}, valid until "
            f"{self.token.expires_at:%Y-%m-%d %H:%M} UTC"
        )

    async def authenticate(self) -> str:
        client = self._connected()
        user = self.mailbox.username
        if self.mailbox.credential_id is None:
            return (
                f"password login as {user}: {await sign_in(self.ctx, self.mailbox, client, None)}"
            )
        mechanism = mechanism_for(self.mailbox, client)
        attempts = 0

        async def attempt(token: AccessToken) -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the refreshed token, on a new connection, as a loop would
                await self._reconnect()
            self.token = token
            return await sign_in(self.ctx, self.mailbox, self._connected(), token)

        said = await authenticate_with_refresh(self.keeper, self.mailbox.credential_id, attempt)
        refreshed = " (after one refresh of the token)" if attempts > 1 else ""
        return f"{mechanism} as {user}: {said}{refreshed}"

    async def _reconnect(self) -> None:
        await self.close()
        self.client = None
        self.client = await self.client_type.open_connected(
            self.mailbox.host,
            self.mailbox.port,
            security=self.mailbox.security,
            tls=tls_context_for(self.mailbox),
            timeout=TIMEOUT,
        )

    async def select(self) -> str:
        client = self._connected()
        if isinstance(client, ImapClient):
            folder = self.mailbox.folder
            try:
                selected = await client.select(folder, readonly=True)
            except imap.ImapError as exc:
                raise imap.ImapError(exc.status, exc.text + await _folders_there(client)) from None
            detail = f"{folder}: {selected.exists} message(s), UIDVALIDITY {selected.uidvalidity}"
            after = self.mailbox.after or ""
            target = after[5:] if after.startswith("move:") else None
            if target is not None and target != folder:
                # Found missing only after a message was taken, it would hold the mailbox up.
                try:
                    await client.status(target)
                except imap.ImapError as exc:
                    raise imap.ImapError(
                        exc.status,
                        f"the folder {target} that mail is moved to (--after {after}) cannot "
                        f"be opened: {exc.text}" + await _folders_there(client),
                    ) from None
                detail += f"; taken mail is moved to {target}"
            return detail
        count, size = await client.stat()
        return f"{count} message(s), {size} bytes"

    async def count(self) -> str:
        client = self._connected()
        if isinstance(client, ImapClient):
            every = await client.uid_search("ALL")
            unseen = await client.uid_search("UNSEEN")
            return f"{len(every)} message(s), {len(unseen)} unseen"
        try:
            listing = await client.uidl()
        except pop3.Pop3Error as exc:
            raise pop3.Pop3Error(f"the server has no UIDL: {exc.reply}") from None
        return f"{len(listing)} message(s) with unique ids (UIDL)"


async def _folders_there(client: ImapClient, shown: int = 20) -> str:
    """The folders that hold mail, as the admin types their names ("; the server has: INBOX,
    Anfragen.Bestätigt"); empty if the server won't list them."""
    try:
        folders = [f.name for f in await client.list_folders() if f.selectable]
    except imap.ImapError:
        return ""
    more = f" and {len(folders) - shown} more" if len(folders) > shown else ""
    return f"; the server has: {', '.join(sorted(folders)[:shown])}{more}" if folders else ""


def _observed(step: str, protocol: str, exc: MailgateError) -> tuple[str, str]:
    """What a step's failure shows the admin, and its tag for the diagnosis (diagnose.Failure's
    `kind`)."""
    if isinstance(exc, TlsFailed):
        return exc.detail, exc.kind
    if isinstance(exc, CaFileUnusable):  # worded as `smtp test` words it
        return f"the CA file {exc.ca_file} cannot be used ({exc.reason})", "certificate"
    if isinstance(exc, NoAnswer) and step == "connect":
        return str(exc), "timeout"
    if isinstance(exc, NotConnected):
        return str(exc), "refused"
    if isinstance(exc, ConnectionLost) and step in ("tls", "greeting"):
        return f"no {protocol.upper()} greeting: {exc}", ""
    if isinstance(exc, sasl.NoOAuthMechanism):
        return str(exc), "mechanism"
    if isinstance(exc, imap.AuthenticationFailed):
        return exc.text, "refused"
    if isinstance(exc, imap.ImapError):
        return exc.text, ""
    if isinstance(exc, pop3.AuthenticationFailed):
        return exc.reply, "refused"
    return str(exc), ""

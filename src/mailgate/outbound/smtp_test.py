"""`mailgate smtp test NAME --to ADDRESS`: send a real test message, step by step, and say what a
failure means (the same catalog the outbox uses). It drives the outbox's own client and sign-in.
Without an address (a page's Test connection), it stops once signed in and sends nothing."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from email.message import EmailMessage
from email.policy import SMTP

import aiosmtplib

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.mail import smtp
from mailgate.mail.diagnose import diagnose_smtp
from mailgate.mail.smtp_servers import check_address, get_smtp
from mailgate.oauth.tokens import TokenKeeper
from mailgate.outbound.outbox import sign_in
from mailgate.steps import StepListener, StepReport
from mailgate.store.models import SmtpServer
from mailgate.tracker.fingerprint import DEFAULT_FINGERPRINT_HEADER, FINGERPRINT

STEPS = ("resolve", "connect", "tls", "greeting", "token", "authenticate", "send")


def test_message(server: SmtpServer, to: str) -> bytes:
    message = EmailMessage()
    message["From"] = email.utils.formataddr((server.from_name or "mailgate", server.from_address))
    message["To"] = to
    message["Subject"] = f"mailgate test message ({server.name})"
    domain = server.from_address.rsplit("@", 1)[-1]
    message["Message-ID"] = email.utils.make_msgid("mailgate.test", domain=domain)
    message["Date"] = email.utils.formatdate()
    message["Auto-Submitted"] = "auto-generated"
    message[DEFAULT_FINGERPRINT_HEADER] = FINGERPRINT
    message.set_content(
        f"This is a test message from mailgate's SMTP server {server.name!r} "
        f"({server.host}:{server.port}), sent as {server.from_address}.\n"
    )
    return message.as_bytes(policy=SMTP)


async def probe_smtp(
    ctx: Context,
    name: str,
    to: str | None,
    keeper: TokenKeeper | None = None,
    on_step: StepListener | None = None,
) -> StepReport:
    """Send the test message to `to` through SMTP server `name`, step by step (with `to` None:
    every step up to signing in, and no message); `on_step` hears each step as it is recorded.
    Cancelled (the admin left the page), it drops the connection."""
    to = check_address(to, "--to") if to is not None else None
    async with ctx.db.session() as session:
        server = await get_smtp(session, name)
    keeper = keeper or TokenKeeper(ctx)
    report = StepReport(on_step=on_step)

    def failed(failure: smtp.SmtpFailure) -> StepReport:
        # The client opens the connection, TLS and greeting in one call: the steps it passed
        # before the failing one are recorded now.
        for step in STEPS[: STEPS.index(failure.step)]:
            if step not in {s.step for s in report.steps}:
                report.record(step, True, "ok")
        return report.fail(failure.step, str(failure), diagnose_smtp(failure, server))

    try:
        addresses = await asyncio.get_running_loop().getaddrinfo(
            server.host, server.port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return failed(smtp.SmtpFailure("resolve", str(exc)))
    found = sorted({str(address[4][0]) for address in addresses})
    report.record("resolve", True, ", ".join(found))
    try:
        async with smtp.connected(server) as client:
            try:
                return await _signed_in_steps(ctx, keeper, server, client, to, report)
            except asyncio.CancelledError:
                client.close()  # in the middle of a command: no QUIT, just hang up
                raise
    except smtp.SmtpFailure as failure:
        return failed(failure)


async def _signed_in_steps(
    ctx: Context,
    keeper: TokenKeeper,
    server: SmtpServer,
    client: aiosmtplib.SMTP,
    to: str | None,
    report: StepReport,
) -> StepReport:
    """The steps on an open connection: what opening it said, the token, sign-in, the send."""
    report.record("connect", True, f"{server.host}:{server.port}")
    report.record("tls", True, server.security)
    greeting = client.last_ehlo_response
    report.record("greeting", True, " ".join(greeting.message.split())[:200] if greeting else "ok")
    if server.credential_id is not None:
        try:
            token = await keeper.access_token(server.credential_id)
        except MailgateError as exc:
            raise smtp.SmtpFailure("token", str(exc)) from None
        report.record("token", True, f"expires {token.expires_at}")
    else:
        report.record("token", True, "password login")
    mechanism = await sign_in(ctx, keeper, server, client)
    report.record("authenticate", True, mechanism)
    if to is None:
        return report
    reply, refused = await smtp.transact(
        client, server.from_address, [to], test_message(server, to)
    )
    report.record("send", True, reply + (f"; refused: {refused}" if refused else ""))
    return report

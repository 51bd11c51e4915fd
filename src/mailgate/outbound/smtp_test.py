"""`mailgate smtp test NAME --to ADDRESS`: send a real test message, step by step, and say what a
failure means (the same catalog the outbox uses). It drives the outbox's own client and sign-in."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from email.message import EmailMessage
from email.policy import SMTP

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.mail import smtp
from mailgate.mail.diagnose import diagnose_smtp
from mailgate.mail.smtp_servers import check_address, get_smtp
from mailgate.oauth.tokens import TokenKeeper
from mailgate.outbound.outbox import sign_in
from mailgate.steps import Step, StepReport
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
    ctx: Context, name: str, to: str, keeper: TokenKeeper | None = None
) -> StepReport:
    to = check_address(to, "--to")
    async with ctx.db.session() as session:
        server = await get_smtp(session, name)
    keeper = keeper or TokenKeeper(ctx)
    report = StepReport()

    def failed(failure: smtp.SmtpFailure) -> StepReport:
        for step in STEPS[: STEPS.index(failure.step)]:
            if step not in {s.step for s in report.steps}:
                report.steps.append(Step(step, True, "ok"))
        report.steps.append(Step(failure.step, False, str(failure)))
        report.diagnosis = diagnose_smtp(failure, server)
        return report

    try:
        addresses = await asyncio.get_running_loop().getaddrinfo(
            server.host, server.port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return failed(smtp.SmtpFailure("resolve", str(exc)))
    found = sorted({str(address[4][0]) for address in addresses})
    report.steps.append(Step("resolve", True, ", ".join(found)))
    try:
        async with smtp.connected(server) as client:
            report.steps.append(Step("connect", True, f"{server.host}:{server.port}"))
            report.steps.append(Step("tls", True, server.security))
            report.steps.append(
                Step(
                    "greeting",
                    True,
                    " ".join(client.last_ehlo_response.message.split())[:200]
                    if client.last_ehlo_response
                    else "ok",
                )
            )
            if server.credential_id is not None:
                try:
                    token = await keeper.access_token(server.credential_id)
                except MailgateError as exc:
                    return failed(smtp.SmtpFailure("token", str(exc)))
                report.steps.append(Step("token", True, f"expires {token.expires_at}"))
            else:
                report.steps.append(Step("token", True, "password login"))
            mechanism = await sign_in(ctx, keeper, server, client)
            report.steps.append(Step("authenticate", True, mechanism))
            reply, refused = await smtp.transact(
                client, server.from_address, [to], test_message(server, to)
            )
            detail = reply + (f"; refused: {refused}" if refused else "")
            report.steps.append(Step("send", True, detail))
    except smtp.SmtpFailure as failure:
        return failed(failure)
    return report

"""Issues for the desk's tests: a project that answers by mail, mail that becomes its issues
through the real pipeline, and many issues written at once."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.tracker.service import NewAttachment, add_project, create_issue, get_project, person
from mailgate.unit import Unit

HELP = Destination(project="HELP", own_addresses=("support@example.com",))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


async def desk_project(ctx: Context) -> None:
    """The project HELP, answering through an SMTP server: notifications reach the outbox."""
    await add_project(ctx, "HELP", "Help desk")
    await add_smtp(
        ctx,
        "out",
        SmtpOptions(
            host="127.0.0.1",
            port=2525,
            security="none",
            username="support@example.com",
            password="not used here",
            from_address="support@example.com",
        ),
    )


def message(
    subject: str = "Printer on fire",
    *,
    sender: str = "Carol Customer <carol@example.net>",
    message_id: str = "<m1@example.net>",
    in_reply_to: str | None = None,
    body: str = "It is burning.",
    cc: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A customer's mail to support@example.com; attachments are (file name, type, bytes)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "support@example.com"
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(mail)


async def mailed(ctx: Context, raw: bytes) -> str:
    """Take a message as a mailbox of HELP would: created, commented, …"""
    taken = await pipeline.take(ctx, None, pipeline.MessageRef(), raw, destination=HELP)
    return taken.status


async def many_issues(
    ctx: Context,
    summaries: Sequence[str],
    *,
    reporter: str = "carol@example.net",
    attachments: Sequence[NewAttachment] = (),
) -> None:
    """Issues of HELP written at once (no mail, no notification), in the order given."""

    def write(unit: Unit) -> None:
        project_id = get_project(unit.session, "HELP").id
        who = person(unit, reporter)
        for summary in summaries:
            create_issue(unit, project_id, who, summary, "", attachments=attachments)

    await Unit.run(ctx, write)

"""Notifications: written to the outbox with the event that causes them, threaded so the
customer's reply lands on the same issue, never to the person who acted, to our own addresses,
or back into a loop."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update
from tests.integration.test_pipeline import mail
from tests.support.desk import desk_project

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound.outbox import list_outbox
from mailgate.store.models import OutboxMessage
from mailgate.tracker.issues import comment_as_agent, show_issue
from mailgate.tracker.service import set_project

pytestmark = pytest.mark.stores("sqlite", "postgresql")

HELP = Destination(project="HELP", own_addresses=("support@example.com",))


@pytest.fixture
async def project(ctx: Context) -> None:
    await with_smtp(ctx)


# The project HELP and an SMTP server: notifications are composed into the outbox.
with_smtp = desk_project


async def take(ctx: Context, raw: bytes) -> str:
    taken = await pipeline.take(ctx, None, pipeline.MessageRef(), raw, destination=HELP)
    return taken.status


async def outbox(ctx: Context) -> list[EmailMessage]:
    async with ctx.db.session() as session:
        raws = (await session.scalars(select(OutboxMessage.raw).order_by(OutboxMessage.id))).all()
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]  # type: ignore[misc]


async def test_a_new_issue_is_acknowledged_and_the_reply_to_it_is_a_comment(
    ctx: Context, project: None
) -> None:
    assert await take(ctx, mail()) == "created"
    [ack] = await outbox(ctx)
    assert ack["To"] == "carol@example.net"
    assert ack["Subject"] == "[HELP-1] Printer on fire"
    assert ack["In-Reply-To"] == "<m1@example.net>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Mailgate-Fingerprint"] and ack["Reply-To"] == "support@example.com"
    assert "HELP-1" in ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<strong>HELP-1</strong>" in ack.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # The customer answers our message (no key in the subject): a comment on the same issue.
    reply = mail("Re: your request", message_id="<r1@example.net>", in_reply_to=ack["Message-ID"])
    assert await take(ctx, reply) == "commented"
    assert len((await show_issue(ctx, "HELP-1"))["comments"]) == 1
    [view] = [v for v in await list_outbox(ctx) if v["kind"] == "acknowledgement"]
    assert view["issue"] == "HELP-1" and view["status"] == "pending" and view["smtp"] == "out"


async def test_a_customer_comment_goes_to_the_others_not_back_to_the_customer(
    ctx: Context, project: None
) -> None:
    await take(ctx, mail(cc="dave@example.net, support@example.com"))
    reply = mail("Re: HELP-1", message_id="<r1@example.net>", body="Still burning.")
    assert await take(ctx, reply) == "commented"
    messages = await outbox(ctx)
    assert [m["To"] for m in messages] == ["carol@example.net", "dave@example.net"]
    comment = messages[1]
    assert comment["Subject"] == "Re: [HELP-1] Printer on fire"
    assert "Still burning." in comment.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert comment["In-Reply-To"] == "<r1@example.net>"  # the customer's latest message
    assert "<m1@example.net>" in comment["References"]


async def test_an_agent_comment_goes_to_reporter_and_watchers(ctx: Context, project: None) -> None:
    await take(ctx, mail(cc="dave@example.net"))
    await comment_as_agent(ctx, "HELP-1", "We replaced the toner.", None)
    to_carol, to_dave = (await outbox(ctx))[1:]
    assert (to_carol["To"], to_dave["To"]) == ("carol@example.net", "dave@example.net")
    assert "We replaced the toner." in to_dave.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    await comment_as_agent(ctx, "HELP-1", "From Dave himself.", "dave@example.net")
    assert [m["To"] for m in (await outbox(ctx))[3:]] == ["carol@example.net"]


async def test_our_own_notification_coming_back_is_ignored(ctx: Context, project: None) -> None:
    await take(ctx, mail())
    [ack] = await outbox(ctx)
    # An auto-forwarding rule sends our acknowledgement back into the support mailbox.
    assert await take(ctx, ack.as_bytes()) == "ignored"
    assert len(await outbox(ctx)) == 1


async def test_no_notification_when_turned_off_or_no_smtp_server_is_chosen(
    ctx: Context, project: None
) -> None:
    await set_project(ctx, "HELP", notify=False)
    await take(ctx, mail())
    assert await outbox(ctx) == []
    await set_project(ctx, "HELP", notify=True)
    second = SmtpOptions(
        host="127.0.0.1", security="none", username="ops@example.com", password="x"
    )
    await add_smtp(ctx, "second", second)  # two servers, the project names neither
    await take(ctx, mail(message_id="<m2@example.net>"))
    assert await outbox(ctx) == []
    await set_project(ctx, "HELP", smtp="second")
    await take(ctx, mail(message_id="<m3@example.net>"))
    [ack] = await outbox(ctx)
    assert ack["From"].addresses[0].addr_spec == "ops@example.com"


async def test_automated_mail_never_gets_a_notification(ctx: Context, project: None) -> None:
    out_of_office = mail(headers={"Auto-Submitted": "auto-replied"})
    assert await take(ctx, out_of_office) == "ignored"
    assert await outbox(ctx) == []


async def test_bulk_forward_sends_automated_mail_on_with_the_original_attached(
    ctx: Context, project: None
) -> None:
    from mailgate.inbound.route import RouteOptions

    forwarding = Destination(
        project="HELP", options=RouteOptions(bulk="forward:postmaster@example.com")
    )
    bounce = mail(
        "Undeliverable: your request",
        sender="MAILER-DAEMON@example.net",
        headers={"Auto-Submitted": "auto-replied"},
    )
    taken = await pipeline.take(ctx, None, pipeline.MessageRef(), bounce, destination=forwarding)
    assert taken.status == "ignored"
    [forwarded] = await outbox(ctx)
    assert forwarded["To"] == "postmaster@example.com"
    assert forwarded["Subject"] == "Fwd: Undeliverable: your request"
    assert forwarded["X-Mailgate-Fingerprint"]  # never taken as a new message if it comes back
    [attached] = list(forwarded.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    original = attached.get_content()
    assert original["Message-ID"] == "<m1@example.net>"


async def test_bulk_forward_attaches_the_original_byte_for_byte_without_reading_its_headers(
    ctx: Context, project: None
) -> None:
    from mailgate.inbound.route import RouteOptions

    forwarding = Destination(
        project="HELP", options=RouteOptions(bulk="forward:postmaster@example.com")
    )
    # Headers the standard library's parsers take quadratic time and memory for (a Cc of 1 MB:
    # minutes and gigabytes, in the write transaction): forwarding must not hand them to it.
    hostile_cc = ", ".join(["=?utf-8?q?x?= <q@b.test>"] * 2000)
    parameters = "; ".join(f"p{n}=v" for n in range(2000))
    auto_reply = (
        "From: Away <away@example.net>\nTo: support@example.com\n"
        f"Cc: {hostile_cc}\nSubject: =?utf-8?q?Abwesend=3A_Drucker?=\n"
        "Auto-Submitted: auto-replied\nMessage-ID: <a1@example.net>\n"
        f"Content-Type: text/plain; {parameters}\n\nI am away.\n"
    ).encode()
    taken = await pipeline.take(
        ctx, None, pipeline.MessageRef(), auto_reply, destination=forwarding
    )
    assert taken.status == "ignored"
    async with ctx.db.session() as session:
        [raw] = (await session.scalars(select(OutboxMessage.raw))).all()
    assert auto_reply.replace(b"\n", b"\r\n") in raw  # not refolded, not re-encoded
    headers = message_from_bytes(raw.split(b"\r\n\r\n")[0], policy=policy.default)
    assert headers["Subject"] == "Fwd: Abwesend: Drucker"


async def test_a_long_comment_is_mailed_in_part_and_kept_whole(ctx: Context, project: None) -> None:
    from mailgate.tracker.notify import NOTIFIED_CHARACTERS

    await take(ctx, mail(cc=", ".join(f"p{n}@example.org" for n in range(10))))
    # Megabytes from one message must not become megabytes for each of its watchers.
    long = "All work and no play makes Jack a dull boy.\n" * 20000
    reply = mail("Re: [HELP-1] Printer on fire", message_id="<r1@example.net>", body=long)
    assert await take(ctx, reply) == "commented"
    [comment] = (await show_issue(ctx, "HELP-1"))["comments"]
    assert comment["body"] == long.strip()
    notifications = (await outbox(ctx))[1:]
    assert len(notifications) == 10
    for message in notifications:
        for kind in ("plain", "html"):
            text = message.get_body((kind,)).get_content()  # type: ignore[union-attr]
            assert "All work and no play" in text and "the rest is in HELP-1" in text
            assert len(text) < NOTIFIED_CHARACTERS + 2000


async def test_closing_an_issue_tells_the_reporter_once(ctx: Context, project: None) -> None:
    from mailgate.tracker.issues import set_status

    await take(ctx, mail())
    assert (await set_status(ctx, "HELP-1", "closed"))["status"] == "closed"
    await set_status(ctx, "HELP-1", "closed")  # no change, no message
    messages = await outbox(ctx)
    assert len(messages) == 2
    closed = messages[1]
    assert closed["Subject"] == "Re: [HELP-1] Printer on fire"
    assert "HELP-1 is now closed." in closed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_metrics_count_the_outbox_by_status(ctx: Context, project: None) -> None:
    from mailgate.runtime.state_metrics import state_metrics

    await take(ctx, mail())
    text = (await ctx.db.run(state_metrics)).decode()
    assert 'mailgate_outbox_messages{status="pending"} 1' in text
    assert 'mailgate_smtp_servers{status="new"} 1' in text


async def test_the_admin_can_change_the_templates(ctx: Context, project: None) -> None:
    templates = ctx.settings.home / "templates"
    templates.mkdir()
    (templates / "acknowledgement.txt").write_text("Ticket {{ key }} is ours now.\n")
    await take(ctx, mail())
    [ack] = await outbox(ctx)
    assert ack.get_body(("plain",)).get_content().strip() == "Ticket HELP-1 is ours now."  # type: ignore[union-attr]
    assert "<strong>HELP-1</strong>" in ack.get_body(("html",)).get_content()  # type: ignore[union-attr]


async def test_a_broken_admin_template_does_not_stop_mail_becoming_issues(
    ctx: Context, project: None
) -> None:
    templates = ctx.settings.home / "templates"
    templates.mkdir()
    (templates / "acknowledgement.txt").write_text("Ticket {{ no_such_value }}\n")
    assert await take(ctx, mail()) == "created"
    [ack] = await outbox(ctx)
    assert "we received your request" in ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_automated_and_noreply_addresses_get_nothing(ctx: Context, project: None) -> None:
    from mailgate.inbound.route import RouteOptions

    accepting = Destination(project="HELP", options=RouteOptions(bulk="accept"))
    automated = mail(
        sender="alerts@monitoring.example", headers={"Auto-Submitted": "auto-generated"}
    )
    taken = await pipeline.take(ctx, None, pipeline.MessageRef(), automated, destination=accepting)
    assert taken.status == "created"  # accepted as an issue, but not acknowledged
    await take(ctx, mail(message_id="<m2@example.net>", cc="noreply@vendor.example"))
    assert (await show_issue(ctx, "HELP-2"))["watchers"] == []
    assert [m["To"] for m in await outbox(ctx)] == ["carol@example.net"]


async def test_a_dead_message_can_be_queued_again(ctx: Context, project: None) -> None:
    from mailgate.outbound.outbox import retry

    await take(ctx, mail())
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status="dead", attempts=3))
    assert await retry(ctx, None) == 1
    [view] = await list_outbox(ctx)
    assert (view["status"], view["attempts"]) == ("pending", 0)


async def test_a_notification_that_cannot_be_composed_costs_no_mail(
    ctx: Context, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailgate.tracker import notify

    def broken(*_args: object, **_kwargs: object) -> int:
        raise ValueError("Header values may not contain linefeed or carriage return characters")

    monkeypatch.setattr(notify, "notify", broken)
    assert await take(ctx, mail()) == "created"
    assert (await show_issue(ctx, "HELP-1"))["summary"] == "Printer on fire"
    assert await outbox(ctx) == []

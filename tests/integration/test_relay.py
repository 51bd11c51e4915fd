"""A stranger can't use the desk to mail others: what an attacker (or a naive auto-responder)
sends never reaches addresses they chose, every notification goes to one recipient alone, and
an auto-reply storm settles. Asserted on the outbox, where every notification is written."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.test_notifications import with_smtp
from tests.integration.test_pipeline import mail

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.quarantine import list_quarantine, retry
from mailgate.inbound.route import RouteOptions
from mailgate.sandbox.pool import ParserPool
from mailgate.store.models import OutboxMessage
from mailgate.tracker.issues import comment_as_agent, list_issues, show_issue
from mailgate.tracker.service import add_project

# Representative tests run on PostgreSQL too (the stores marker below); the rest on SQLite.

DESK = "support@example.com"
HELP = Destination(project="HELP", own_addresses=(DESK,))
VICTIMS = [f"victim{n}@example.org" for n in range(500)]


@pytest.fixture
async def project(ctx: Context) -> None:
    await with_smtp(ctx)


async def take(ctx: Context, raw: bytes, destination: Destination = HELP) -> str:
    taken = await pipeline.take(ctx, None, pipeline.MessageRef(), raw, destination=destination)
    return taken.status


async def outbox(ctx: Context) -> list[tuple[list[str], EmailMessage]]:
    """(recipients, message) of every outbox row, oldest first."""
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(OutboxMessage.recipients, OutboxMessage.raw).order_by(OutboxMessage.id)
            )
        ).all()
    return [
        (list(recipients), message_from_bytes(raw, policy=policy.default))  # type: ignore[misc]
        for recipients, raw in rows
    ]


async def everyone_mailed(ctx: Context) -> set[str]:
    return {address for recipients, _ in await outbox(ctx) for address in recipients}


@pytest.mark.stores("sqlite", "postgresql")
async def test_500_addresses_in_cc_and_a_strangers_reply_mail_none_of_them(
    ctx: Context, project: None
) -> None:
    attack = mail("Cheap watches", sender="spammer@attacker.test", cc=", ".join(VICTIMS))
    assert await take(ctx, attack) == "created"
    issue = await show_issue(ctx, "HELP-1")
    assert issue["watchers"] == sorted(VICTIMS[:10])  # the default cap
    # The agent sees who was left out.
    assert "490 more Cc'd addresses were not added as watchers" in issue["description"]
    spam = mail(
        "Re: [HELP-1] Cheap watches",
        sender="stranger@elsewhere.test",
        message_id="<spam@elsewhere.test>",
        body="Buy now at https://watches.test",
    )
    assert await take(ctx, spam) == "created"  # a new issue of its own, not a comment
    assert (await show_issue(ctx, "HELP-1"))["comments"] == []
    assert await everyone_mailed(ctx) == {"spammer@attacker.test", "stranger@elsewhere.test"}


async def test_without_watchers_from_cc_the_cc_is_only_noted(ctx: Context, project: None) -> None:
    none = Destination(project="HELP", options=RouteOptions(max_cc_watchers=0))
    assert await take(ctx, mail(cc="dave@example.net"), none) == "created"
    issue = await show_issue(ctx, "HELP-1")
    assert issue["watchers"] == []
    assert "dave@example.net" in issue["description"]


@pytest.mark.stores("sqlite", "postgresql")
async def test_each_notification_goes_to_one_recipient_alone_and_keeps_the_thread(
    ctx: Context, project: None
) -> None:
    await take(ctx, mail(cc="dave@example.net, erin@example.net"))
    before = len(await outbox(ctx))
    await comment_as_agent(ctx, "HELP-1", "We replaced the toner.", None)
    sent = (await outbox(ctx))[before:]
    assert [recipients for recipients, _ in sent] == [
        ["carol@example.net"],
        ["dave@example.net"],
        ["erin@example.net"],
    ]
    for recipients, message in sent:
        assert message["To"] == recipients[0]  # nobody sees the others
        assert message["Cc"] is None and message["Bcc"] is None
        assert message["In-Reply-To"] == "<m1@example.net>"
        assert "<m1@example.net>" in message["References"]
    assert len({str(message["Message-ID"]) for _, message in sent}) == 3
    # The next one is threaded on what each recipient has: never on the copies others got.
    await comment_as_agent(ctx, "HELP-1", "And the drum.", None)
    _, next_to_dave = (await outbox(ctx))[before + 4]
    assert next_to_dave["To"] == "dave@example.net"
    assert str(sent[1][1]["Message-ID"]) in next_to_dave["References"]
    assert str(sent[0][1]["Message-ID"]) not in next_to_dave["References"]
    # A reply to any one of them finds the issue.
    _, to_erin = sent[2]
    reply = mail(
        "Re: toner",
        sender="erin@example.net",
        message_id="<e1@example.net>",
        in_reply_to=str(to_erin["Message-ID"]),
        body="Thanks!",
    )
    assert await take(ctx, reply) == "commented"


async def test_a_key_of_another_project_is_just_text(ctx: Context, project: None) -> None:
    await add_project(ctx, "SEC", "Security")
    secret = Destination(project="SEC", own_addresses=("security@example.com",))
    await take(ctx, mail("Breach", message_id="<s1@example.net>"), secret)
    # Carol is SEC-1's reporter, but writes to the HELP mailbox.
    reply = mail("Re: [SEC-1] Breach", message_id="<r1@example.net>", body="More details.")
    assert await take(ctx, reply) == "created"
    assert (await show_issue(ctx, "SEC-1"))["comments"] == []
    assert (await show_issue(ctx, "HELP-1"))["summary"] == "Re: [SEC-1] Breach"
    # The admin can allow it, per mailbox.
    allowing = Destination(project="HELP", options=RouteOptions(keys_of_other_projects=True))
    again = mail("Re: [SEC-1] Breach", message_id="<r2@example.net>", body="Even more.")
    assert await take(ctx, again, allowing) == "commented"
    assert [c["body"] for c in (await show_issue(ctx, "SEC-1"))["comments"]] == ["Even more."]


async def test_a_strangers_reply_held_for_an_agent_notifies_nobody_until_accepted(
    ctx: Context, project: None
) -> None:
    holding = Destination(project="HELP", options=RouteOptions(non_participants="hold"))
    await take(ctx, mail(cc="dave@example.net"), holding)
    before = len(await outbox(ctx))
    stranger = mail(
        "Re: [HELP-1] Printer on fire",
        sender="mallory@elsewhere.test",
        message_id="<x1@elsewhere.test>",
        body="Call me.",
    )
    assert await take(ctx, stranger, holding) == "quarantined"
    assert len(await outbox(ctx)) == before
    [held] = await list_quarantine(ctx)
    assert "not the reporter or a watcher of HELP-1" in held["reason"]
    assert held["issue"] == "HELP-1"
    accepted = await retry(ctx, held["id"], as_comment=True)
    assert (accepted["status"], accepted["issue"]) == ("commented", "HELP-1")
    assert [c["body"] for c in (await show_issue(ctx, "HELP-1"))["comments"]] == ["Call me."]
    told = [recipients for recipients, _ in (await outbox(ctx))[before:]]
    assert told == [["carol@example.net"], ["dave@example.net"]]  # like any comment


async def test_a_held_message_is_parsed_again_outside_the_write_lock(
    ctx: Context,
    project: None,
    parse_log: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holding = Destination(project="HELP", options=RouteOptions(non_participants="hold"))
    await take(ctx, mail(), holding)
    stranger = mail("Re: [HELP-1] x", sender="mallory@elsewhere.test", message_id="<x2@e.test>")
    assert await take(ctx, stranger, holding) == "quarantined"
    [held] = await list_quarantine(ctx)
    monkeypatch.setenv("MAILGATE_TEST_DB", str(settings.home / "mailgate.db"))
    await ctx.parsers.close()
    ctx.parsers = ParserPool(size=1, parse="tests.support.parsing:lock_probe")
    assert (await retry(ctx, held["id"], as_comment=True))["status"] == "commented"
    assert parse_log.read_text().splitlines() == ["free"]  # no transaction waited on it


async def test_accepting_as_a_comment_needs_an_issue(ctx: Context, project: None) -> None:
    from mailgate.errors import BadInput

    assert await take(ctx, mail(sender="root")) == "quarantined"
    [held] = await list_quarantine(ctx)
    with pytest.raises(BadInput, match="no issue"):
        await retry(ctx, held["id"], as_comment=True)


def naive_auto_reply(to: EmailMessage, sender: str, n: int) -> bytes:
    """What a badly made out-of-office sends: a reply with no RFC 3834 header at all."""
    return mail(
        f"Re: {to['Subject']}",
        sender=sender,
        message_id=f"<auto{n}@{sender.split('@')[1]}>",
        in_reply_to=str(to["Message-ID"]),
        body="I am away until Monday.",
    )


@pytest.mark.parametrize(
    "responders",
    [["dave@example.net"], ["carol@example.net", "dave@example.net"]],
    ids=["a watcher", "the reporter and a watcher"],
)
@pytest.mark.stores("sqlite", "postgresql")
async def test_an_auto_reply_storm_settles(
    ctx: Context, project: None, responders: list[str]
) -> None:
    await take(ctx, mail(cc="dave@example.net, erin@example.net"))
    await comment_as_agent(ctx, "HELP-1", "Which printer?", None)
    answered = 0
    rounds = 0
    while rounds < 30:
        rows = await outbox(ctx)
        pending = [(r, m) for r, m in rows[answered:] if r[0] in responders]
        answered = len(rows)
        if not pending:
            break
        for n, (recipients, message) in enumerate(pending):
            await take(ctx, naive_auto_reply(message, recipients[0], rounds * 100 + n))
        rounds += 1
    assert rounds <= RouteOptions().max_comments_per_issue_hour + 1
    comments = (await show_issue(ctx, "HELP-1"))["comments"]
    per_responder = RouteOptions().max_comments_per_issue_hour
    assert len(comments) <= 1 + per_responder * len(responders)
    # Erin, who never answered, got at most one message per comment that was taken.
    assert sum(r == ["erin@example.net"] for r, _ in await outbox(ctx)) <= len(comments)


async def test_from_root_gets_nothing_and_is_nobodys_watcher(ctx: Context, project: None) -> None:
    assert await take(ctx, mail(sender="root")) == "quarantined"
    [held] = await list_quarantine(ctx)
    assert "From" in held["reason"]
    assert await outbox(ctx) == []
    assert await list_issues(ctx) == []
    # Addresses without a domain in Cc are neither watchers nor recipients.
    await take(ctx, mail(message_id="<m2@example.net>", cc="root, dave@example.net"))
    assert (await show_issue(ctx, "HELP-1"))["watchers"] == ["dave@example.net"]
    await comment_as_agent(ctx, "HELP-1", "Done.", None)
    assert "root" not in await everyone_mailed(ctx)


PUBLIC = "help@example.com"


async def desk_with_public_address(ctx: Context) -> Destination:
    """A mailbox whose login is not the address customers write to: it takes only mail to its
    catch address."""
    from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox, destination_of

    mailbox, _ = await add_mailbox(
        ctx,
        "inbox",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            security="none",
            username="inbox@example.com",
            password="not used here",
            project="HELP",
            route={"catch_address": PUBLIC},
        ),
    )
    return destination_of(mailbox)


async def test_a_reply_to_a_notification_reaches_a_mailbox_with_a_catch_address(
    ctx: Context, project: None
) -> None:
    desk = await desk_with_public_address(ctx)
    assert await take(ctx, mail(cc=PUBLIC), desk) == "created"
    [(_, ack)] = await outbox(ctx)
    assert ack["Reply-To"] == PUBLIC  # where the mailbox takes mail, not its login
    reply = EmailMessage()
    reply["From"] = "carol@example.net"
    reply["To"] = ack["Reply-To"]
    reply["Subject"] = "Re: your request"
    reply["Message-ID"] = "<r1@example.net>"
    reply["In-Reply-To"] = str(ack["Message-ID"])
    reply.set_content("It is out now.")
    assert await take(ctx, bytes(reply), desk) == "commented"


async def test_the_catch_address_is_one_of_the_desks_own(ctx: Context, project: None) -> None:
    desk = await desk_with_public_address(ctx)
    await take(ctx, mail(cc=f"dave@example.net, {PUBLIC.upper()}"), desk)
    assert (await show_issue(ctx, "HELP-1"))["watchers"] == ["dave@example.net"]
    # Mail from the desk's public address (an alias forwarding to itself, say) is answered to
    # nobody: the desk never mails itself.
    looped = mail(sender=f"Desk <{PUBLIC}>", message_id="<m2@example.net>", cc=PUBLIC)
    await take(ctx, looped, desk)
    await comment_as_agent(ctx, "HELP-1", "Done.", None)
    assert PUBLIC not in await everyone_mailed(ctx)


@pytest.mark.parametrize(
    "address",
    [
        "no_reply@vendor.example",
        "no.reply@vendor.example",
        "do_not_reply@vendor.example",
        "do.not.reply@vendor.example",
        '"no reply"@vendor.example',
        '"noreply"@vendor.example',
    ],
)
async def test_noreply_addresses_in_all_their_spellings_get_nothing(
    ctx: Context, project: None, address: str
) -> None:
    await take(ctx, mail(cc=f"dave@example.net, {address}"))
    assert (await show_issue(ctx, "HELP-1"))["watchers"] == ["dave@example.net"]
    await take(ctx, mail(sender=address, message_id="<m2@example.net>"))
    await comment_as_agent(ctx, "HELP-1", "Done.", None)
    assert await everyone_mailed(ctx) == {"carol@example.net", "dave@example.net"}


def utf8_mail(sender: str, cc: str, message_id: str) -> bytes:
    """A message with UTF-8 in its headers, as an SMTPUTF8 server delivers it (RFC 6532)."""
    return (
        f"From: {sender}\r\nTo: {DESK}\r\nCc: {cc}\r\nSubject: Printer\r\n"
        f"Message-ID: {message_id}\r\n\r\nIt is burning.\r\n"
    ).encode()


@pytest.mark.parametrize(
    "domain",
    [
        "\uff45xample.net",  # a fullwidth "e": example.net to a mail server (UTS #46)
        "\U0001d41example.net",  # a mathematical bold "e": the same
    ],
)
async def test_a_domain_spelled_in_a_unicode_variant_is_no_mailbox(
    ctx: Context, project: None, domain: str
) -> None:
    # Counted apart from carol@example.net, such a spelling would pass every per-sender limit
    # while the mail it gets still reaches Carol.
    assert await take(ctx, utf8_mail(f"carol@{domain}", DESK, "<m1@example.net>")) == "quarantined"
    cc = utf8_mail("carol@example.net", f"dave@{domain}", "<m2@example.net>")
    assert await take(ctx, cc) == "created"
    assert (await show_issue(ctx, "HELP-1"))["watchers"] == []
    assert await everyone_mailed(ctx) == {"carol@example.net"}


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_held_message_that_arrived_twice_becomes_one_comment(
    ctx: Context, project: None
) -> None:
    holding = Destination(project="HELP", options=RouteOptions(non_participants="hold"))
    await take(ctx, mail(), holding)
    stranger = mail("Re: [HELP-1] x", sender="mallory@elsewhere.test", message_id="<x3@e.test>")
    assert await take(ctx, stranger, holding) == "quarantined"
    # The same message again, through another mailbox of the project (or sent twice).
    again = stranger.replace(b"Subject:", b"X-Copy: 2\nSubject:")
    assert await take(ctx, again, holding) == "quarantined"
    first, second = await list_quarantine(ctx)
    assert (await retry(ctx, first["id"], as_comment=True))["status"] == "commented"
    before = len(await outbox(ctx))
    assert (await retry(ctx, second["id"], as_comment=True))["status"] == "duplicate"
    assert len((await show_issue(ctx, "HELP-1"))["comments"]) == 1
    assert len(await outbox(ctx)) == before


async def test_a_key_with_a_number_no_issue_can_have_is_just_text(
    ctx: Context, project: None
) -> None:
    await take(ctx, mail())
    huge = mail("Re: [HELP-99999999999999999999999] fire", message_id="<m2@example.net>")
    assert await take(ctx, huge) == "created"
    assert (await show_issue(ctx, "HELP-2"))["summary"] == "Re: [HELP-99999999999999999999999] fire"

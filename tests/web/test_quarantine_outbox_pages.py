"""The quarantine and outbox pages act: a quarantined message is retried (and becomes an issue
once its cause is fixed), downloaded as an .eml file, or discarded after a confirmation (kept in
the audit log, never retried); an agent does the same; a long quarantine pages, and a message
retried between two pages moves nothing; a dead or pending notification is retried from the
outbox, which filters by status."""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from html import unescape

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.quarantine import list_quarantine
from mailgate.store.models import AuditEvent, Blob, OutboxMessage, Receipt
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.issues import list_issues
from mailgate.tracker.service import add_project
from tests.support.clock import FakeClock
from tests.support.web import WebClient


def mail(subject: str = "Printer on fire", sender: str = "carol@example.net") -> bytes:
    message = EmailMessage()
    message["From"] = f"Carol <{sender}>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@example.net>"
    message.set_content("It is burning.\n<script>alert(1)</script>")
    return bytes(message)


async def quarantined(ctx: Context, subject: str = "Printer on fire") -> int:
    """A message for project HELP before HELP exists: held with the reason."""
    taken = await pipeline.take(
        ctx, None, pipeline.MessageRef(), mail(subject), destination=Destination(project="HELP")
    )
    assert taken.status == "quarantined"
    return taken.receipt_id


def rows(page: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr data-{attribute}="(\d+)"', page)


async def test_a_retried_message_becomes_an_issue_once_its_cause_is_fixed(
    ctx: Context, admin: WebClient
) -> None:
    held = await quarantined(ctx)
    page = await admin.get("/quarantine")
    assert rows(page.text, "receipt") == [str(held)]
    assert "project HELP does not exist" in page.text and "carol@example.net" in page.text
    still = await admin.post(f"/quarantine/{held}/retry")
    assert still.status_code == 303
    shown = await admin.get(still.headers["location"])
    assert f"Message {held} is still quarantined" in shown.text
    await add_project(ctx, "HELP", "Help desk")
    answer = await admin.post(f"/quarantine/{held}/retry")
    assert (answer.status_code, answer.headers["location"]) == (303, "/quarantine")
    after = await admin.get("/quarantine")
    assert f"Message {held} became a new issue HELP-1." in after.text
    assert rows(after.text, "receipt") == [] and "Nothing is held back" in after.text
    assert [issue["summary"] for issue in await list_issues(ctx)] == ["Printer on fire"]
    actions = [event["action"] for event in await audit_log(ctx)]
    assert actions.count("quarantine.retry") == 2


async def test_retrying_what_is_not_quarantined_says_so_on_the_page(admin: WebClient) -> None:
    answer = await admin.post("/quarantine/42/retry")
    assert answer.status_code == 404
    assert "No quarantined message 42" in answer.text and 'role="alert"' in answer.text


async def test_the_raw_message_downloads_as_a_file_never_shown(
    ctx: Context, admin: WebClient
) -> None:
    held = await quarantined(ctx)
    page = await admin.get("/quarantine")
    assert f'href="/quarantine/{held}/raw"' in page.text and "Download .eml" in page.text
    raw = await admin.get(f"/quarantine/{held}/raw")
    assert raw.status_code == 200 and raw.content == mail()
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"] == f'attachment; filename="message-{held}.eml"'
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert (await admin.get("/quarantine/999/raw")).status_code == 404


async def test_a_discarded_message_is_asked_about_audited_and_never_retried(
    ctx: Context, admin: WebClient
) -> None:
    held = await quarantined(ctx)
    confirm = await admin.get(f"/quarantine/{held}/discard")
    assert confirm.status_code == 200 and f"Discard message {held}?" in confirm.text
    assert "carol@example.net" in confirm.text and "project HELP does not exist" in confirm.text
    assert f'action="/quarantine/{held}/discard"' in confirm.text
    assert rows((await admin.get("/quarantine")).text, "receipt") == [str(held)]  # not yet
    answer = await admin.post(f"/quarantine/{held}/discard", {"reason": "a test message"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/quarantine")
    page = await admin.get("/quarantine")
    assert f"Message {held} discarded" in page.text and rows(page.text, "receipt") == []
    assert await list_quarantine(ctx) == []
    [event] = [e for e in await audit_log(ctx) if e["action"] == "quarantine.discard"]
    assert event["actor"] == "admin@example.com" and event["subject"] == f"message {held}"
    assert event["detail"] == "from carol@example.net: a test message"
    await add_project(ctx, "HELP", "Help desk")
    again = await admin.post(f"/quarantine/{held}/retry")
    assert again.status_code == 404  # discarded: nothing to retry
    assert await list_issues(ctx) == []
    status = await ctx.db.read(lambda s: s.scalar(select(Receipt.status)))
    assert status == "ignored"
    assert (await admin.get(f"/quarantine/{held}/discard")).status_code == 404


async def test_an_agent_retries_and_discards_from_the_quarantine(
    ctx: Context, agent: WebClient
) -> None:
    first, second = await quarantined(ctx, "first"), await quarantined(ctx, "second")
    page = await agent.get("/quarantine")
    assert page.status_code == 200 and rows(page.text, "receipt") == [str(first), str(second)]
    await add_project(ctx, "HELP", "Help desk")
    assert (await agent.post(f"/quarantine/{first}/retry")).status_code == 303
    assert (await agent.get(f"/quarantine/{second}/raw")).status_code == 200
    assert (await agent.post(f"/quarantine/{second}/discard")).status_code == 303
    assert await list_quarantine(ctx) == []
    actors = await ctx.db.read(
        lambda s: s.scalars(
            select(AuditEvent.actor).where(AuditEvent.action.startswith("quarantine."))
        ).all()
    )
    assert set(actors) == {"agent@example.com"}


async def many_quarantined(ctx: Context, count: int) -> list[int]:
    """`count` quarantined messages written straight into the table (no pipeline: cheap), none
    with a recorded sender, all kept as the same bytes; their ids, oldest first."""
    raw = mail("Lots of them", "dave@example.net")
    sha256 = hashlib.sha256(raw).hexdigest()

    def write(session: Session) -> list[int]:
        session.add(Blob(sha256=sha256, size=len(raw), data=raw))
        receipts = [
            Receipt(
                origin="test",
                project="HELP",
                message_id=f"<m{number}@example.net>",
                sha256=sha256,
                size=len(raw),
                status="quarantined",
                reason=f"held {number}",
                received_at=ctx.clock(),
            )
            for number in range(count)
        ]
        session.add_all(receipts)
        session.flush()
        return [receipt.id for receipt in receipts]

    return await ctx.db.run(write)


def newer_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">Newer</a>', page)
    return unescape(found.group(1)) if found else None


async def test_a_long_quarantine_pages_and_a_message_retried_meanwhile_breaks_nothing(
    ctx: Context, admin: WebClient
) -> None:
    ids = await many_quarantined(ctx, 120)
    first = await admin.get("/quarantine")
    assert rows(first.text, "receipt") == [str(i) for i in ids[:50]]  # oldest first
    assert "dave@example.net" in first.text  # read from the From header of the ones shown
    newer = newer_link(first.text)
    assert newer is not None
    # The last message of the page goes (retried into an issue) before the next page is read.
    await add_project(ctx, "HELP", "Help desk")
    assert (await admin.post(f"/quarantine/{ids[49]}/retry")).status_code == 303
    assert [issue["summary"] for issue in await list_issues(ctx)] == ["Lots of them"]
    second = await admin.get(newer)
    assert rows(second.text, "receipt") == [str(i) for i in ids[50:100]]
    assert ">Oldest</a>" in second.text
    third = await admin.get(newer_link(second.text) or "")
    assert rows(third.text, "receipt") == [str(i) for i in ids[100:]]
    assert newer_link(third.text) is None
    after_last = await admin.get(f"/quarantine?after={ids[-1]}")
    assert rows(after_last.text, "receipt") == [] and "No messages newer" in after_last.text


async def outbox_messages(ctx: Context, statuses: list[str]) -> None:
    def write(session: object) -> None:
        for number, status in enumerate(statuses, 1):
            session.add(  # type: ignore[attr-defined]
                OutboxMessage(
                    kind="comment",
                    recipients=[f"reader{number}@example.net"],
                    message_id=f"<n{number}@mailgate.test>",
                    raw=f"Subject: Notification {number}\r\n\r\nbody\r\n".encode(),
                    status=status,
                    attempts=3 if status == "dead" else 1,
                    next_attempt_at=ctx.clock(),
                    last_error="550 mailbox unavailable" if status != "sent" else None,
                    created_at=ctx.clock(),
                )
            )

    await ctx.db.run(write)


async def test_the_outbox_filters_by_status_and_retries_dead_and_pending_messages(
    ctx: Context, admin: WebClient, clock: FakeClock
) -> None:
    await outbox_messages(ctx, ["sent", "dead", "pending"])
    everything = await admin.get("/outbox")
    assert rows(everything.text, "outbox") == ["3", "2", "1"]  # newest first
    assert "550 mailbox unavailable" in everything.text
    assert everything.text.count(">Retry</button>") == 2  # not on the sent one
    dead = await admin.get("/outbox?status=dead")
    assert rows(dead.text, "outbox") == ["2"]
    answer = await admin.post("/outbox/2/retry", {"status": "dead"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/outbox?status=dead")
    after = await admin.get(answer.headers["location"])
    assert "Message 2 is queued again." in after.text and rows(after.text, "outbox") == []
    clock.advance(hours=1)
    assert (await admin.post("/outbox/3/retry")).status_code == 303
    state = await ctx.db.read(
        lambda s: s.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.next_attempt_at)
        ).all()
    )
    assert {(i, status) for i, status, _ in state} == {(1, "sent"), (2, "pending"), (3, "pending")}
    assert dict((i, when) for i, _, when in state)[3] == clock()  # tried at once
    sent = await admin.post("/outbox/1/retry")
    assert sent.status_code == 404 and "No dead message 1" in sent.text
    actions = [e["action"] for e in await audit_log(ctx)]
    assert actions.count("outbox.retry") == 2


async def test_every_dead_message_is_retried_at_once_and_the_outbox_pages(
    ctx: Context, admin: WebClient
) -> None:
    await outbox_messages(ctx, ["dead"] * 55)
    first = await admin.get("/outbox?status=dead")
    assert len(rows(first.text, "outbox")) == 50
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', first.text)
    assert older is not None
    second = await admin.get(older.group(1).replace("&amp;", "&"))
    assert rows(second.text, "outbox") == ["5", "4", "3", "2", "1"]
    answer = await admin.post("/outbox/retry-dead", {"status": "dead"})
    shown = await admin.get(answer.headers["location"])
    assert "55 dead message(s) queued again." in shown.text
    async with ctx.db.session() as session:
        left = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.status == "dead").limit(1)
        )
    assert left is None


async def test_agents_may_not_touch_the_outbox(ctx: Context, agent: WebClient) -> None:
    await outbox_messages(ctx, ["dead"])
    assert (await agent.post("/outbox/1/retry")).status_code == 403
    assert (await agent.post("/outbox/retry-dead")).status_code == 403
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(OutboxMessage).values(attempts=3))
        status = await session.scalar(select(OutboxMessage.status))
    assert status == "dead"

"""The inbound pipeline: every message becomes an issue or a comment exactly once; automated
mail never does; what cannot be processed is quarantined, kept, and can be retried."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.clock import FakeClock

from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.ingest import ingest
from mailgate.inbound.quarantine import list_quarantine, retry
from mailgate.inbound.route import RouteOptions
from mailgate.store.models import Issue, Person, Receipt
from mailgate.tracker.issues import list_issues, show_issue
from mailgate.tracker.service import add_project

pytestmark = pytest.mark.stores("sqlite", "postgresql")

HELP = Destination(project="HELP", own_addresses=("support@example.com",))


def mail(
    subject: str = "Printer on fire",
    *,
    sender: str = "Carol Customer <carol@example.net>",
    message_id: str | None = "<m1@example.net>",
    in_reply_to: str | None = None,
    body: str = "It is burning.",
    cc: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if attachment:
        message.add_attachment(
            attachment[1], maintype="application", subtype="octet-stream", filename=attachment[0]
        )
    return bytes(message)


@pytest.fixture
async def project(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help desk")


async def take(ctx: Context, raw: bytes, destination: Destination = HELP) -> pipeline.Taken:
    return await pipeline.take(
        ctx, None, pipeline.MessageRef(), raw, destination=destination, origin="test"
    )


async def test_a_message_creates_an_issue(ctx: Context, project: None) -> None:
    taken = await take(
        ctx, mail(cc="dave@example.net, support@example.com", attachment=("log.txt", b"x" * 100))
    )
    assert taken.status == "created"
    issue = await show_issue(ctx, "HELP-1")
    assert issue["summary"] == "Printer on fire"
    assert issue["reporter"] == "carol@example.net"
    assert "It is burning." in issue["description"]
    assert issue["watchers"] == ["dave@example.net"]  # Cc, not our own address
    assert [(a["filename"], a["size"]) for a in issue["attachments"]] == [("log.txt", 100)]
    assert issue["source_message_id"] == "m1@example.net"


async def test_reply_by_key_and_by_in_reply_to_become_comments(ctx: Context, project: None) -> None:
    await take(ctx, mail())
    # Erin is no participant yet: the mailbox lets anyone comment (by default she would open
    # an issue of her own).
    anyone = Destination(project="HELP", options=RouteOptions(non_participants="comment"))
    by_key = await take(
        ctx,
        mail(
            "Re: [HELP-1] Printer on fire",
            message_id="<m2@example.net>",
            body="Still burning.\n\nOn Mon, Carol wrote:\n> It is burning.",
            sender="Erin <erin@example.net>",
        ),
        anyone,
    )
    by_reply = await take(
        ctx,
        mail(
            "Re: Printer on fire",
            message_id="<m3@example.net>",
            in_reply_to="<m1@example.net>",
            body="Out now.",
        ),
    )
    assert (by_key.status, by_reply.status) == ("commented", "commented")
    issue = await show_issue(ctx, "HELP-1")
    assert [c["body"] for c in issue["comments"]] == ["Still burning.", "Out now."]
    assert "erin@example.net" in issue["watchers"]  # a commenter becomes a watcher
    assert len(await list_issues(ctx, "HELP")) == 1


async def test_every_time_written_comes_from_the_injected_clock(
    ctx: Context, project: None, clock: FakeClock
) -> None:
    """Receipts, issues, comments and people are stamped with the context's clock, never
    the wall clock: a pipeline run at a time of the test's choosing records that time."""
    clock.current = created = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    await take(ctx, mail())
    commented = clock.advance(hours=2)
    await take(ctx, mail("Re: [HELP-1] Printer on fire", message_id="<m2@example.net>"))
    issue = await show_issue(ctx, "HELP-1")
    assert issue["created_at"] == created.isoformat()
    assert [c["created_at"] for c in issue["comments"]] == [commented.isoformat()]
    async with ctx.db.session() as session:
        receipts = (await session.scalars(select(Receipt).order_by(Receipt.id))).all()
        people = (await session.scalars(select(Person))).all()
        updated = await session.scalar(select(Issue.updated_at))
    assert [r.received_at for r in receipts] == [created, commented]
    assert [p.created_at for p in people] == [created]
    assert updated == commented


async def test_the_same_message_twice_is_one_issue(ctx: Context, project: None) -> None:
    first = await take(ctx, mail())
    again = await pipeline.take(
        ctx,
        None,
        pipeline.MessageRef(),
        mail() + b"\n",  # other bytes,
        destination=HELP,
        origin="second mailbox",
    )  # same Message-ID
    assert first.status == "created" and again.status == "duplicate"
    assert len(await list_issues(ctx, "HELP")) == 1


@pytest.mark.parametrize(
    ("headers", "sender"),
    [
        ({"Auto-Submitted": "auto-replied"}, "carol@example.net"),
        ({"X-Autoreply": "yes"}, "carol@example.net"),
        ({}, "MAILER-DAEMON@mx.example.net"),
        ({"Precedence": "bulk"}, "news@example.net"),
        ({"List-Id": "<users.lists.example.net>"}, "list@example.net"),
        ({"X-Mailgate-Fingerprint": "HELP-1"}, "support@example.com"),
    ],
)
async def test_automated_mail_is_ignored(
    ctx: Context, project: None, headers: dict[str, str], sender: str
) -> None:
    taken = await take(ctx, mail(sender=sender, headers=headers))
    assert taken.status == "ignored"
    assert await list_issues(ctx, "HELP") == []


async def test_unknown_project_is_quarantined_then_retried(ctx: Context) -> None:
    taken = await take(ctx, mail(), Destination(project="NOPE"))
    assert taken.status == "quarantined"
    [held] = await list_quarantine(ctx)
    assert "project NOPE does not exist" in held["reason"] and held["kept"]
    await add_project(ctx, "NOPE", "Found again")
    result = await retry(ctx, held["id"])
    assert result["status"] == "created"
    assert await list_quarantine(ctx) == []
    assert (await show_issue(ctx, "NOPE-1"))["summary"] == "Printer on fire"


async def test_attachment_over_the_limit_is_noted_not_kept(ctx: Context, project: None) -> None:
    small = Destination(project="HELP", options=RouteOptions(max_attachment_bytes=1000))
    await take(ctx, mail(attachment=("big.bin", b"y" * 5000)), small)
    issue = await show_issue(ctx, "HELP-1")
    assert issue["attachments"] == []
    assert "big.bin (5000 bytes) not kept" in issue["description"]


async def test_ingest_eml_mbox_and_maildir(ctx: Context, project: None, tmp_path: Path) -> None:
    import mailbox

    eml = tmp_path / "one.eml"
    eml.write_bytes(mail("From a file", message_id="<f1@example.net>"))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(mail("From an mbox", message_id="<f2@example.net>"))
    box.add(mail("Re: [HELP-1] From a file", message_id="<f3@example.net>", body="more"))
    box.flush()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(mail("From a Maildir", message_id="<f4@example.net>"))
    summary = await ingest(ctx, [eml, tmp_path / "archive.mbox", tmp_path / "Maildir"], "HELP")
    assert dict(summary) == {"created": 3, "commented": 1}
    again = await ingest(ctx, [eml], "HELP")
    assert dict(again) == {"duplicate": 1}


async def test_ingest_takes_a_whole_thread_and_counts_empty_files(
    ctx: Context, project: None, tmp_path: Path
) -> None:
    """An archive brings a customer's whole history at once: no flood or per-issue comment
    limit holds any of it back. A file with nothing in it is counted, not skipped silently."""
    import mailbox

    box = mailbox.mbox(tmp_path / "thread.mbox")
    box.add(mail("Printer on fire", message_id="<t0@example.net>"))
    for n in range(1, 9):
        box.add(mail("Re: [HELP-1] Printer on fire", message_id=f"<t{n}@example.net>", body=f"{n}"))
    box.flush()
    (tmp_path / "empty.eml").write_bytes(b"")
    summary = await ingest(ctx, [tmp_path / "thread.mbox", tmp_path / "empty.eml"], "HELP")
    assert dict(summary) == {"created": 1, "commented": 8, "empty": 1}


async def test_a_large_ingest_parses_in_other_processes_in_order(
    ctx: Context, project: None, tmp_path: Path
) -> None:
    """More than one batch: parsing runs in spawned processes while earlier batches are
    written, and a reply in a later batch still finds the issue of an earlier one."""
    import mailbox

    from mailgate.inbound import ingest as ingest_module

    box = mailbox.mbox(tmp_path / "big.mbox")
    for n in range(ingest_module.BATCH * 2 + 5):
        box.add(mail(f"Case {n}", message_id=f"<big{n}@example.net>", body=f"body {n}"))
    box.add(mail("Re: Case 0", message_id="<late@example.net>", in_reply_to="<big0@example.net>"))
    box.flush()
    seen: list[str] = []
    summary = await ingest(
        ctx, [tmp_path / "big.mbox"], "HELP", on_message=lambda origin, _: seen.append(origin)
    )
    assert dict(summary) == {"created": ingest_module.BATCH * 2 + 5, "commented": 1}
    assert seen == [f"{tmp_path / 'big.mbox'}#{n}" for n in range(len(seen))]
    first = await show_issue(ctx, "HELP-1")
    assert first["summary"] == "Case 0" and len(first["comments"]) == 1
    assert (await show_issue(ctx, "HELP-205"))["description"].strip() == "body 204"


async def test_a_failing_message_in_a_batch_is_quarantined_alone(
    ctx: Context, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is taken again message by message: the others are created, once each."""
    from mailgate.inbound import handle as handle_module

    real = handle_module.handle

    def sometimes(session, receipt_id, received_at, message, destination):  # type: ignore[no-untyped-def]
        if message.subject == "poison":
            raise RuntimeError("cannot digest this")
        return real(session, receipt_id, received_at, message, destination)

    monkeypatch.setattr(pipeline, "handle", sometimes)
    batch = [
        pipeline.Incoming(pipeline.MessageRef(), mail(subject, message_id=f"<{n}@x.example>"))
        for n, subject in enumerate(["first", "poison", "third"])
    ]
    taken = await pipeline.take_many(ctx, None, batch, destination=HELP)
    assert [t.status for t in taken] == ["created", "quarantined", "created"]
    assert [i["summary"] for i in await list_issues(ctx)] == ["first", "third"]
    [held] = await list_quarantine(ctx)
    assert "cannot digest this" in held["reason"]


async def test_a_database_failure_is_not_blamed_on_the_message(
    ctx: Context, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filling up while a message is handled fails the whole batch, quarantines
    nothing and stores nothing: the batch is taken again once the database works."""
    from mailgate.errors import OperationFailed

    real = pipeline.handle

    def disk_full(session, receipt_id, received_at, message, destination):  # type: ignore[no-untyped-def]
        if message.subject == "second":
            raise OperationFailed("The disk holding the SQLite database is full: free space.")
        return real(session, receipt_id, received_at, message, destination)

    monkeypatch.setattr(pipeline, "handle", disk_full)
    batch = [
        pipeline.Incoming(pipeline.MessageRef(), mail(subject, message_id=f"<d{n}@x.example>"))
        for n, subject in enumerate(["first", "second"])
    ]
    with pytest.raises(OperationFailed, match="disk"):
        await pipeline.take_many(ctx, None, batch, destination=HELP)
    assert await list_issues(ctx) == [] and await list_quarantine(ctx) == []
    monkeypatch.setattr(pipeline, "handle", real)
    taken = await pipeline.take_many(ctx, None, batch, destination=HELP)
    assert [t.status for t in taken] == ["created", "created"]


async def test_dmarc_failure_is_quarantined_when_asked(ctx: Context, project: None) -> None:
    spoofed = mail(
        headers={
            "Authentication-Results": "mx.example.com; spf=fail smtp.mailfrom=example.net; dkim=none; dmarc=fail header.from=example.net"
        }
    )
    strict = Destination(project="HELP", options=RouteOptions(quarantine_dmarc_fail=True))
    assert (await take(ctx, spoofed, strict)).status == "quarantined"
    relaxed = await take(ctx, spoofed.replace(b"<m1@", b"<m2@"))  # the default records it
    assert relaxed.status == "created"
    assert "dmarc=fail" in (await show_issue(ctx, "HELP-1"))["sender_authentication"]


async def test_a_flood_from_one_sender_is_quarantined(ctx: Context, project: None) -> None:
    limited = Destination(project="HELP", options=RouteOptions(max_per_sender_hour=3))
    statuses = [
        (
            await take(ctx, mail(f"message {n}", message_id=f"<flood{n}@example.net>"), limited)
        ).status
        for n in range(5)
    ]
    assert statuses == ["created"] * 3 + ["quarantined"] * 2


async def test_a_failure_inside_the_handler_quarantines_the_message(
    ctx: Context, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailgate.tracker import service

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "create_issue", broken)
    taken = await take(ctx, mail())
    assert taken.status == "quarantined"
    [held] = await list_quarantine(ctx)
    assert "disk on fire" in held["reason"] and held["kept"]
    monkeypatch.undo()
    assert (await retry(ctx, held["id"]))["status"] == "created"


async def test_a_reply_to_another_projects_issue_twice_is_one_comment(
    ctx: Context, project: None
) -> None:
    await add_project(ctx, "SEC", "Security")
    await take(ctx, mail(message_id="<s1@example.net>"), Destination(project="SEC"))
    reply = mail("Re: SEC-1", message_id="<r1@example.net>", body="again")
    # A mailbox that takes keys of other projects (by default they are only text).
    keys = Destination(project="HELP", options=RouteOptions(keys_of_other_projects=True))
    assert (await take(ctx, reply, keys)).status == "commented"
    assert (await take(ctx, reply + b"\n", keys)).status == "duplicate"  # another mailbox
    assert len((await show_issue(ctx, "SEC-1"))["comments"]) == 1


async def test_a_failed_message_does_not_leave_a_reporter_behind_for_the_next(
    ctx: Context, project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new customer created inside a message that then fails is rolled back with it: the
    next message from that customer must not reuse the vanished person."""
    from mailgate.tracker import service

    real = service.create_issue

    def fails_for_first(*args: object, **kwargs: object) -> object:
        if args[3] == "first":  # the summary
            raise RuntimeError("a hiccup after the reporter was created")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "create_issue", fails_for_first)
    batch = [
        pipeline.Incoming(pipeline.MessageRef(), mail("first", message_id="<a1@x.example>")),
        pipeline.Incoming(
            pipeline.MessageRef(),
            mail("from bob", sender="bob@example.net", message_id="<b1@x.example>"),
        ),
        pipeline.Incoming(pipeline.MessageRef(), mail("second", message_id="<a2@x.example>")),
    ]
    taken = await pipeline.take_many(ctx, None, batch, destination=HELP)
    assert [t.status for t in taken] == ["quarantined", "created", "created"]
    issues = {i["summary"]: i["reporter"] for i in await list_issues(ctx)}
    assert issues == {"from bob": "bob@example.net", "second": "carol@example.net"}


async def test_ingest_says_which_file_cannot_be_read(
    ctx: Context, project: None, tmp_path: Path
) -> None:
    """A file the system cannot read (no permission, a failing disk): one sentence naming it,
    not a traceback; what was taken before it is recognised when ingest runs again."""
    from mailgate.errors import BadInput

    good = tmp_path / "good.eml"
    good.write_bytes(mail())
    unreadable = Path("/proc/self/mem")  # reading it from offset 0 fails (EIO), even as root
    with pytest.raises(BadInput, match=r"/proc/self/mem cannot be read \(Input/output error\)"):
        await ingest(ctx, [good, unreadable], "HELP")


async def test_ingest_skips_a_maildir_message_removed_while_it_runs(tmp_path: Path) -> None:
    """A live Maildir: a message another program deletes after ingest listed the folder is
    gone, like a mailbox's message deleted meanwhile; the others are read."""
    import mailbox

    from mailgate.inbound.ingest import messages

    maildir = mailbox.Maildir(tmp_path / "Maildir")
    first = maildir.add(mail("first", message_id="<d1@example.net>"))
    second = maildir.add(mail("second", message_id="<d2@example.net>"))
    third = maildir.add(mail("third", message_id="<d3@example.net>"))
    reading = messages([tmp_path / "Maildir"])
    keys = sorted([first, second, third])
    assert next(reading)[0].endswith(keys[0])
    maildir.remove(keys[1])
    assert [origin.rsplit("/", 1)[1] for origin, _raw in reading] == [keys[2]]

"""Every message costs bounded time and memory, or is quarantined with the reason: through the
whole pipeline (ingest, POP3, IMAP), with the parsing processes' limits injected.

- the pathological messages that once took minutes and gigabytes each are taken;
- a message whose parser is killed twice is quarantined "could not be parsed within limits" and
  never parsed a third time, however often it is seen again;
- no parse happens while the database's write lock is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.hostile import PATHOLOGICAL
from tests.support.mail import ALICE, message, with_mailbox
from tests.support.parsing import POISON

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import OperationFailed
from mailgate.inbound.ingest import ingest
from mailgate.inbound.mailboxes import MailboxOptions, set_mailbox
from mailgate.inbound.quarantine import list_quarantine, retry
from mailgate.mail.pop3 import Pop3Client
from mailgate.runtime import imap_mailbox, pop3_mailbox
from mailgate.runtime.imap_mailbox import PollReport, receipts_of
from mailgate.sandbox.pool import ParseLimits, ParserPool
from mailgate.store.models import Mailbox, Receipt
from mailgate.tracker.issues import list_issues, show_issue
from mailgate.tracker.service import add_project

OpenContext = Callable[..., Context]
PollOnce = Callable[..., Awaitable[PollReport]]


async def mailbox_at(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, protocol: str, **options: object
) -> tuple[Mailbox, PollOnce]:
    """The "support" mailbox at the test Dovecot over IMAP or POP3, and how to poll it."""
    port = {"imap": dovecot.imaps_port, "pop3": dovecot.pop3s_port}[protocol]
    row = await with_mailbox(ctx, emulator, dovecot, protocol=protocol, port=port, **options)
    return row, {"imap": imap_mailbox.poll_once, "pop3": pop3_mailbox.poll_once}[protocol]


@pytest.fixture
async def open_ctx(settings: Settings, clock: FakeClock) -> AsyncIterator[OpenContext]:
    """A Context whose parsing processes run the given parse function with the given limits."""
    opened: list[Context] = []

    def make(parse: str, **limits: float) -> Context:
        pool = ParserPool(ParseLimits(**limits), size=2, parse=parse)  # type: ignore[arg-type]
        ctx = Context.open(settings, clock=clock, sleep=clock.sleep, parsers=pool)
        opened.append(ctx)
        return ctx

    yield make
    for ctx in opened:
        await ctx.close()


def write(folder: Path, name: str, raw: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(raw)
    return path


def mail(n: int, *, extra: bytes = b"") -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.net>\nTo: help@example.com\n"
        f"Subject: question {n}\nMessage-ID: <q{n}@example.net>\n".encode()
        + extra
        + b"\nplease help\n"
    )


async def receipts(ctx: Context) -> list[Receipt]:
    async with ctx.db.session() as session:
        return list((await session.scalars(select(Receipt).order_by(Receipt.id))).all())


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
async def test_pathological_messages_are_taken(
    open_ctx: OpenContext, tmp_path: Path, case: str
) -> None:
    """With the real parser and its default limits, each becomes an issue or a quarantine
    with its reason — and nothing else waits on it."""
    ctx = open_ctx("mailgate.inbound.parse:parse_message")
    await add_project(ctx, "HELP", "Help desk")
    path = write(tmp_path / "mail", "case.eml", PATHOLOGICAL[case]())
    summary = await ingest(ctx, [path], "HELP")
    [receipt] = await receipts(ctx)
    assert receipt.status in ("created", "quarantined"), summary
    if receipt.status == "quarantined":
        assert receipt.reason
    assert ctx.parsers.attempts_made == 1  # parsed once, within its limits


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
async def test_pathological_message_over_an_injected_deadline_is_quarantined_once(
    open_ctx: OpenContext, tmp_path: Path, case: str
) -> None:
    """A deadline no parse can meet: the message is quarantined with the reason after two
    killed parsers, and taking it again parses nothing."""
    ctx = open_ctx("mailgate.inbound.parse:parse_message", seconds=0.0005, seconds_per_megabyte=0)
    await add_project(ctx, "HELP", "Help desk")
    path = write(tmp_path / "mail", "case.eml", PATHOLOGICAL[case]())
    assert await ingest(ctx, [path], "HELP") == {"quarantined": 1}
    [receipt] = await receipts(ctx)
    assert receipt.reason == (
        "could not be parsed within limits: it took longer than 0.0005 s (twice)"
    )
    assert ctx.parsers.attempts_made == 2
    assert await ingest(ctx, [path], "HELP") == {"duplicate": 1}
    assert ctx.parsers.attempts_made == 2  # not parsed a third time
    assert await list_issues(ctx) == []


@pytest.mark.parametrize("how", ["hang", "memory", "crash"])
async def test_a_poison_message_is_quarantined_and_the_rest_taken(
    open_ctx: OpenContext, parse_log: Path, tmp_path: Path, how: str
) -> None:
    # A short deadline for the message that hangs; room for the others to show their own
    # failure (filling 512 MB takes a while on a loaded machine).
    seconds = 1.0 if how == "hang" else 60.0
    ctx = open_ctx("tests.support.parsing:poison", seconds=seconds, memory_megabytes=512)
    await add_project(ctx, "HELP", "Help desk")
    folder = tmp_path / "mail"
    paths = [write(folder, f"{n}.eml", mail(n)) for n in range(5)]
    paths.append(write(folder, "poison.eml", mail(99, extra=POISON + f" {how}\n".encode())))
    assert await ingest(ctx, paths, "HELP") == {"created": 5, "quarantined": 1}
    [held] = [r for r in await receipts(ctx) if r.status == "quarantined"]
    assert held.message_id == "q99@example.net"
    assert held.reason is not None
    assert held.reason.startswith("could not be parsed within limits: ")
    assert parse_log.read_text().count("<q99@example.net>") == 2
    # Seen again (a restart, a second ingest): recognised, never parsed again.
    assert await ingest(ctx, paths, "HELP") == {"duplicate": 6}
    assert parse_log.read_text().count("<q99@example.net>") == 2


async def test_no_parse_while_the_write_lock_is_held(
    open_ctx: OpenContext,
    settings: Settings,
    parse_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = settings.home / "mailgate.db"
    monkeypatch.setenv("MAILGATE_TEST_DB", str(database))
    ctx = open_ctx("tests.support.parsing:lock_probe")
    await add_project(ctx, "HELP", "Help desk")
    folder = tmp_path / "mail"
    # One batch (no batch is written while the next is parsed), then messages one by one as
    # a mailbox pushed by IDLE or a POP3 mailbox takes them.
    await ingest(ctx, [write(folder, f"{n}.eml", mail(n)) for n in range(30)], "HELP")
    for n in range(30, 33):
        await ingest(ctx, [write(folder, f"{n}.eml", mail(n))], "HELP")
    probes = parse_log.read_text().splitlines()
    assert probes == ["free"] * 33


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_a_poison_message_in_a_mailbox_is_quarantined_once(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    parse_log: Path,
    protocol: str,
) -> None:
    """A message whose parser hangs, in a real mailbox: quarantined, left on the server, and
    not parsed again at the next polls; the mail around it is taken."""
    ctx.parsers = ParserPool(ParseLimits(seconds=1.0), size=2, parse="tests.support.parsing:poison")
    dovecot.deliver(ALICE, message("before"))
    dovecot.deliver(ALICE, mail(7, extra=POISON + b" hang\n"))
    dovecot.deliver(ALICE, message("after"))
    row, poll = await mailbox_at(ctx, emulator, dovecot, protocol, after="delete")
    first = await poll(ctx, "support")
    assert len(first.taken) == 3 and len(first.quarantined) == 1
    statuses = {r.message_id: (r.status, r.reason) for r in await receipts_of(ctx, row.id)}
    assert statuses["q7@example.net"] == (
        "quarantined",
        "could not be parsed within limits: it took longer than 1 s (twice)",
    )
    assert statuses["before@example.net"][0] == statuses["after@example.net"][0] == "created"
    assert dovecot.mailbox_status(ALICE)["messages"] == 1  # the poison one, left there
    for _ in range(2):
        again = await poll(ctx, "support")
        assert again.taken == []
    assert parse_log.read_text().count("<q7@example.net>") == 2


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_no_parse_while_a_mailbox_holds_the_write_lock(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    parse_log: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    monkeypatch.setenv("MAILGATE_TEST_DB", str(settings.home / "mailgate.db"))
    ctx.parsers = ParserPool(size=2, parse="tests.support.parsing:lock_probe")
    _row, poll = await mailbox_at(ctx, emulator, dovecot, protocol)
    for n in range(3):  # one message at a time, as IDLE pushes them
        dovecot.deliver(ALICE, message(f"pushed {n}"))
        assert len((await poll(ctx, "support")).taken) == 1
    assert parse_log.read_text().splitlines() == ["free"] * 3


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_a_message_with_lines_longer_than_rfc_5322_allows_is_taken(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, protocol: str
) -> None:
    """Lines of 998 characters at most, says RFC 5322 §2.1.1; a sender's or a server's that
    are longer (an HTML body on one line, a parameter of 10 MB) are taken like any other mail,
    and the mail after them too."""
    long_line = mail(8, extra=b"X-Long: " + b"y" * 100_000 + b"\n").replace(
        b"please help", b"<p>" + b"z" * 5000 + b"</p>\n.\n..two dots\n.one dot"
    )
    dovecot.deliver(ALICE, message("before"))
    dovecot.deliver(ALICE, long_line)
    dovecot.deliver(ALICE, message("after"))
    row, poll = await mailbox_at(ctx, emulator, dovecot, protocol, after="delete")
    first = await poll(ctx, "support")
    assert len(first.taken) == 3 and first.quarantined == []
    statuses = {r.message_id: r.status for r in await receipts_of(ctx, row.id)}
    assert statuses == {
        "before@example.net": "created",
        "q8@example.net": "created",
        "after@example.net": "created",
    }
    assert dovecot.mailbox_status(ALICE)["messages"] == 0
    [issue] = [i for i in await list_issues(ctx) if i["summary"] == "question 8"]
    description = (await show_issue(ctx, issue["key"]))["description"]
    # POP3 doubles a leading dot (RFC 1939 §3): read back as sent, and the message goes on.
    assert "z" * 5000 + "</p>\n.\n..two dots\n.one dot" in description


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_a_message_over_the_size_limit_is_taken_after_the_limit_is_raised(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, protocol: str
) -> None:
    """Over --max-message-bytes: quarantined, never fetched. Once the admin raises the limit
    and retries it, the next poll takes it — even when that poll fails first (its parsing
    processes could not start): the message is not forgotten in between."""
    dovecot.deliver(ALICE, message("huge", size=50_000))
    row, poll = await mailbox_at(ctx, emulator, dovecot, protocol, max_message_bytes=20_000)
    first = await poll(ctx, "support")
    assert len(first.quarantined) == 1
    [held] = await list_quarantine(ctx)
    await set_mailbox(ctx, "support", MailboxOptions(max_message_bytes=100_000))
    assert (await retry(ctx, held["id"]))["status"] == "refetch"
    working = ctx.parsers
    ctx.parsers = ParserPool(size=1, parse="tests.support.no_such_module:parse")
    with pytest.raises(OperationFailed, match="A parsing process could not start"):
        await poll(ctx, "support")
    await ctx.parsers.close()
    ctx.parsers = working
    await poll(ctx, "support")
    [receipt] = await receipts_of(ctx, row.id)
    assert (receipt.message_id, receipt.status) == ("huge@example.net", "created")
    assert [i["summary"] for i in await list_issues(ctx)] == ["huge"]
    assert await list_quarantine(ctx) == []


async def test_copies_of_a_poison_message_in_one_batch_are_parsed_as_one(
    open_ctx: OpenContext, parse_log: Path, tmp_path: Path
) -> None:
    """A sender who sends the same poison message a hundred times costs the parsers what one
    costs: the same bytes are parsed once per batch, and recognised after."""
    ctx = open_ctx("tests.support.parsing:poison", seconds=1.0)
    await add_project(ctx, "HELP", "Help desk")
    poison = mail(66, extra=POISON + b" hang\n")
    paths = [write(tmp_path / "mail", f"{n}.eml", poison) for n in range(5)]
    assert await ingest(ctx, paths, "HELP") == {"quarantined": 1, "duplicate": 4}
    assert parse_log.read_text().count("<q66@example.net>") == 2


async def retrieve_from(answer: bytes, number: int) -> tuple[bytes | None, str, list[str]]:
    """RETR `number` (a limit of 20,000 bytes) from a POP3 server whose message is longer than
    it listed it — `answer` is its answer, as sent —, then NOOP: what RETR gave, NOOP's reply,
    and the commands the server received."""
    commands: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands.append((await reader.readline()).decode().strip())
        writer.write(answer)
        await writer.drain()
        while line := await reader.readline():
            commands.append(line.decode().strip())
        writer.close()

    async with await asyncio.start_server(serve, "127.0.0.1", 0) as server:
        pop = await Pop3Client.open("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            raw = await pop.retrieve(number, limit=20_000)
            return raw, await pop.command("NOOP"), commands
        finally:
            await pop.close()


async def test_a_message_longer_than_its_limit_is_not_kept_whatever_the_server_listed() -> None:
    """The size check before RETR trusts the server's LIST; the retrieval itself holds at most
    the limit, and reads the rest of the answer away, so the next command is understood."""
    body = b"x" * 3000 + b"\r\n"
    raw, after, commands = await retrieve_from(b"+OK\r\n" + body * 10 + b".\r\n+OK next\r\n", 1)
    assert raw is None
    assert commands[0] == "RETR 1"
    assert after == "+OK next"
    raw, _, _ = await retrieve_from(b"+OK\r\n..a\r\n" + body + b".\r\n+OK\r\n", 2)
    assert raw == b".a\r\n" + body


async def test_a_poison_message_is_not_parsed_again_after_the_folder_is_renumbered(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, parse_log: Path
) -> None:
    """A new UIDVALIDITY gives every message a new UID: the quarantined one is recognised by
    its bytes and not parsed a third time; a message that came meanwhile is taken."""
    ctx.parsers = ParserPool(ParseLimits(seconds=1.0), size=2, parse="tests.support.parsing:poison")
    dovecot.deliver(ALICE, mail(7, extra=POISON + b" hang\n"))
    await with_mailbox(ctx, emulator, dovecot, backlog="all")
    first = await imap_mailbox.poll_once(ctx, "support")
    assert len(first.quarantined) == 1
    dovecot.change_uidvalidity(ALICE)
    dovecot.deliver(ALICE, message("meanwhile"))
    again = await imap_mailbox.poll_once(ctx, "support")
    assert len(again.taken) == 1 and len(again.skipped) == 1
    assert parse_log.read_text().count("<q7@example.net>") == 2


async def test_a_message_to_fetch_again_that_left_the_server_leaves_no_receipt_behind(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    """Retried after its limit was raised, but deleted from the server before the next poll:
    its receipt goes (as the message did), instead of being looked for at every poll."""
    dovecot.deliver(ALICE, message("huge", size=50_000))
    row = await with_mailbox(ctx, emulator, dovecot, max_message_bytes=20_000)
    await imap_mailbox.poll_once(ctx, "support")
    [held] = await list_quarantine(ctx)
    await set_mailbox(ctx, "support", MailboxOptions(max_message_bytes=100_000))
    assert (await retry(ctx, held["id"]))["status"] == "refetch"
    dovecot.doveadm("expunge", "-u", ALICE, "mailbox", "INBOX", "all")
    await imap_mailbox.poll_once(ctx, "support")
    assert await receipts_of(ctx, row.id) == []

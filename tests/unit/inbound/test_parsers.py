"""The parsing processes: every message parsed with a deadline and a memory limit, a message
that kills or outlives its parser twice found unparsable, and the pool working on after it."""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.parsing import POISON

from mailgate.errors import OperationFailed
from mailgate.inbound.parse import InboundMessage
from mailgate.sandbox.pool import ParseLimits, ParserPool, Unparsable


def mail(n: int, poison: str | None = None) -> bytes:
    extra = POISON + b" " + poison.encode() + b"\n" if poison else b""
    return (
        b"From: Customer <customer@example.net>\nTo: help@example.com\n"
        + f"Subject: message {n}\nMessage-ID: <m{n}@example.net>\n".encode()
        + extra
        + b"\nbody\n"
    )


@pytest.fixture
async def pool(parse_log: Path) -> AsyncIterator[ParserPool]:
    parsers = ParserPool(
        ParseLimits(seconds=1.0, memory_megabytes=512),
        size=2,
        parse="tests.support.parsing:poison",
    )
    yield parsers
    await parsers.close()


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


async def test_messages_are_parsed_in_order(pool: ParserPool) -> None:
    parsed = await pool.parse_all([mail(n) for n in range(7)])
    assert [p.subject for p in parsed if isinstance(p, InboundMessage)] == [
        f"message {n}" for n in range(7)
    ]


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("hang", "could not be parsed within limits: it took longer than 1 s (twice)"),
        ("memory", "could not be parsed within limits: it needed more than 512 MB (twice)"),
        ("crash", "could not be parsed within limits: its process crashed (SIGSEGV) (twice)"),
    ],
)
async def test_a_message_that_defeats_its_parser_twice_is_unparsable(
    pool: ParserPool, parse_log: Path, how: str, reason: str
) -> None:
    if how != "hang":
        # Room for the failure itself: filling 512 MB takes a while on a loaded machine.
        pool.limits = ParseLimits(seconds=60.0, memory_megabytes=512)
    [good_before, bad, good_after] = await pool.parse_all([mail(1), mail(2, how), mail(3)])
    assert bad == Unparsable(reason)
    assert lines(parse_log).count("Message-ID: <m2@example.net>") == 2  # tried twice, not more
    # The others were parsed, and the pool goes on with new processes.
    assert isinstance(good_before, InboundMessage) and isinstance(good_after, InboundMessage)
    [later] = await pool.parse_all([mail(4)])
    assert isinstance(later, InboundMessage) and later.subject == "message 4"


async def test_a_parser_bug_is_reported_not_retried(pool: ParserPool, parse_log: Path) -> None:
    [bad] = await pool.parse_all([mail(5, "raise")])
    assert bad == Unparsable("the parser failed on it (ValueError: a bug in the parser)")
    assert lines(parse_log).count("Message-ID: <m5@example.net>") == 1


async def test_the_pool_keeps_at_most_its_size(pool: ParserPool) -> None:
    await pool.parse_all([mail(n) for n in range(20)])
    assert len(pool._all) <= 2
    await pool.close()
    assert pool._all == set()


async def test_the_real_parser_stops_at_its_memory_limit() -> None:
    """A message bigger than its parser's memory allows is unparsable (the parser does not
    swallow MemoryError and read less of it); a normal one parses in the same pool."""
    parsers = ParserPool(ParseLimits(memory_megabytes=128), size=1)
    try:
        attachment = b"QUFB" * (12 * 1024 * 1024)  # 48 MB of base64
        big = (
            b"From: a@example.net\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n\n" + attachment
        )
        [too_big, small] = await parsers.parse_all([big, mail(8)])
        assert too_big == Unparsable(
            "could not be parsed within limits: it needed more than 128 MB (twice)"
        )
        assert isinstance(small, InboundMessage) and small.subject == "message 8"
    finally:
        await parsers.close()


async def test_a_parsing_process_that_died_while_idle_costs_no_message_an_attempt(
    parse_log: Path,
) -> None:
    """The kernel's OOM killer picks the largest process: maybe an idle parser that kept the
    heap of a large message. The next message, sent to it before its end was noticed, is not
    found unparsable: it never reached a parser."""
    parsers = ParserPool(
        ParseLimits(seconds=5.0, attempts=1), size=1, parse="tests.support.parsing:poison"
    )
    try:
        await parsers.parse_all([mail(1)])
        [idle] = parsers._idle
        idle.process.kill()
        # At once: its end is not known yet (nothing waited on the event loop meanwhile).
        parsed = await parsers.parse_one(mail(3))
        assert isinstance(parsed, InboundMessage) and parsed.subject == "message 3"
        assert lines(parse_log).count("Message-ID: <m3@example.net>") == 1
    finally:
        await parsers.close()


async def test_a_slow_start_is_not_counted_in_the_deadline(
    parse_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline is the parse's: a parsing process that takes longer to start than a parse
    may last (a machine under load) costs no message its attempts."""
    monkeypatch.setenv("MAILGATE_TEST_START_SECONDS", "2")
    parsers = ParserPool(ParseLimits(seconds=1.0), size=1, parse="tests.support.parsing:poison")
    try:
        [parsed] = await parsers.parse_all([mail(1)])
        assert isinstance(parsed, InboundMessage) and parsed.subject == "message 1"
    finally:
        await parsers.close()


@pytest.mark.parametrize(
    ("parse", "memory", "says"),
    [
        ("tests.support.no_such_module:parse", 512, "No module named 'tests.support.no_such"),
        ("tests.support.parsing:poison", 8, "MAILGATE_PARSE_MEMORY_MB"),
    ],
)
async def test_a_parsing_process_that_cannot_start_quarantines_nothing(
    parse: str, memory: int, says: str
) -> None:
    """A broken installation, or a memory limit too low to parse anything, is the admin's to
    fix: said as such (the mailbox retries later), never blamed on each message in turn."""
    parsers = ParserPool(ParseLimits(seconds=5.0, memory_megabytes=memory), size=1, parse=parse)
    try:
        with pytest.raises(OperationFailed, match="A parsing process could not start") as failed:
            await parsers.parse_all([mail(1), mail(2)])
        assert says in str(failed.value)
        assert parsers._all == set()
    finally:
        await parsers.close()


async def test_a_result_too_large_for_mailgate_itself_is_unparsable(
    pool: ParserPool, parse_log: Path
) -> None:
    """A MemoryError in mailgate's own process while it reads a parse's result is that
    message's failure: the message ends quarantined, instead of failing the mailbox at every
    poll."""
    [bad, good] = await pool.parse_all([mail(6, "huge-result"), mail(7)])
    assert bad == Unparsable(
        "could not be parsed within limits: its result was too large for mailgate's own "
        "memory (twice)"
    )
    assert lines(parse_log).count("Message-ID: <m6@example.net>") == 2
    assert isinstance(good, InboundMessage)


async def test_close_ends_a_parse_in_flight_and_starts_no_other(
    pool: ParserPool, parse_log: Path
) -> None:
    """Stopping mailgate while a message is parsed: the parse fails as stopped (the message is
    taken at the next start), it is not blamed on the message, and no process outlives close."""
    parsing = asyncio.create_task(pool.parse_one(mail(9, "hang")))
    while "Message-ID: <m9@example.net>" not in lines(parse_log):
        await asyncio.sleep(0.05)
    processes = [worker.process for worker in pool._all]
    await pool.close()
    with pytest.raises(OperationFailed, match="stopped"):
        await parsing
    assert pool._all == set() and pool._idle == []
    assert [process.returncode is not None for process in processes] == [True]
    assert lines(parse_log).count("Message-ID: <m9@example.net>") == 1
    with pytest.raises(OperationFailed, match="stopped"):
        await pool.parse_one(mail(10))


async def test_a_parsing_process_holds_no_secret_and_leaves_no_core_file(
    pool: ParserPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that reads strangers' mail has neither the encryption keys nor the
    database's password, and a crash there writes no copy of its memory to disk."""
    monkeypatch.setenv("MAILGATE_SECRET_KEYS", "a-key")
    monkeypatch.setenv("MAILGATE_DATABASE_URL", "postgresql://mailgate:a-password@db/mailgate")
    await pool.parse_all([mail(1)])
    [worker] = pool._idle
    environment = Path(f"/proc/{worker.process.pid}/environ").read_bytes()
    assert b"a-key" not in environment and b"a-password" not in environment
    assert b"MAILGATE_TEST_PARSE_LOG=" in environment  # the rest is passed on
    limits = Path(f"/proc/{worker.process.pid}/limits").read_text().splitlines()
    [core] = [line for line in limits if line.startswith("Max core file size")]
    assert core.split()[4:6] == ["0", "0"]


async def test_a_cancelled_parse_ends_its_process_and_blames_no_message(
    pool: ParserPool, parse_log: Path
) -> None:
    """A mailbox loop stopped (or Ctrl-C) while a message is parsed: that process ends, the
    message is not counted as having defeated it, and the pool parses on."""
    parsing = asyncio.create_task(pool.parse_one(mail(11, "hang")))
    while "Message-ID: <m11@example.net>" not in lines(parse_log):
        await asyncio.sleep(0.05)
    [worker] = pool._all
    parsing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parsing
    await asyncio.gather(*pool._ending)
    assert worker.process.returncode == -signal.SIGKILL
    assert pool._all == set()
    [after] = await pool.parse_all([mail(12)])
    assert isinstance(after, InboundMessage) and after.subject == "message 12"


async def test_a_large_message_and_its_large_result_pass_the_pipes() -> None:
    """20 MB in, 20 MB of attachment back: neither pipe's buffer stalls the exchange."""
    parsers = ParserPool(size=1)
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    raw = (
        b"From: a@example.net\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n"
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        b"Content-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    try:
        parsed = await parsers.parse_one(raw)
    finally:
        await parsers.close()
    assert isinstance(parsed, InboundMessage)
    [attachment] = parsed.attachments
    assert attachment.data == data

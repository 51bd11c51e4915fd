"""The parsing processes: every message parsed with a deadline and a memory limit, a message
that kills or outlives its parser twice found unparsable, and the pool working on after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.parsing import POISON

from mailgate.inbound.parse import InboundMessage
from mailgate.inbound.parsers import ParseLimits, ParserPool, Unparsable


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

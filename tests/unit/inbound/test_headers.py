"""Header values: RFC 2047 decoding as mature readers do it, ids and dates within bounds, and the
parsing policy that never hands the stdlib a value it would take minutes (or a RecursionError)
over."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesParser

import pytest

from mailgate.inbound.headers import (
    MAX_ID,
    MAX_NESTING,
    POLICY,
    decode_text,
    message_ids,
    parse_date,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # RFC 2047 §6.2: white space between adjacent encoded words is dropped, whatever the
        # charsets; between an encoded word and ordinary text it stays.
        ("=?Windows-1252?Q?Hans_B=C4KO?= =?iso-8859-15?q?Sch=F6nland?=", "Hans BÄKOSchönland"),
        ("=?utf-8?q?a?=  \t =?utf-8?q?b?=", "ab"),
        ("Re: =?utf-8?q?caf=C3=A9?= ok", "Re: café ok"),
        # Spaces inside an encoded word (against §2, written by real clients; zammad mail050,
        # mail077).
        ("=?us-ascii?Q?ABC / 123 / Wetterau West / ABC?=", "ABC / 123 / Wetterau West / ABC"),
        ("=?UTF-8?Q? Personal=C3=A4nderung?=", "Personaländerung"),
        # A multi-byte character split over two words of one charset.
        ("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "éé"),
        ("=?utf-8?q?a=0D=0AB?=", "a B"),
        ("no words at all", "no words at all"),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ],
)
def test_decode_text(raw: str, expected: str) -> None:
    assert decode_text(raw) == expected


def test_a_five_megabyte_run_of_encoded_words_decodes_in_one_pass() -> None:
    assert decode_text("=?utf-8?q?abc?= " * 300_000) == "abc" * 300_000


def test_ids_longer_than_a_line_are_left_out() -> None:
    long_id = "a" * (MAX_ID + 1) + "@x.test"
    assert message_ids(f"<{long_id}> <ok@x.test>") == ["ok@x.test"]
    assert message_ids("<" + "b" * (MAX_ID - 7) + "@x.test>") == ["b" * (MAX_ID - 7) + "@x.test"]


def test_a_date_is_read_from_its_first_characters_only() -> None:
    value = "Mon, 6 Jan 2025 11:30:54 +0100" + " x" * 500_000
    assert parse_date(value) == datetime(
        2025, 1, 6, 11, 30, 54, tzinfo=timezone(timedelta(hours=1))
    )


@pytest.mark.parametrize("name", ["Content-Type", "Content-Disposition", "Subject", "To"])
def test_deeply_nested_comments_never_reach_the_stdlib_recursion(name: str) -> None:
    header = POLICY.header_factory(name, "text/plain; x=" + "(" * 5000)
    str(header)  # the stdlib recursed once per "(" and raised RecursionError near 1,000


def test_the_stdlib_sees_a_short_content_type_with_the_parameters_it_reads() -> None:
    value = 'Multipart/Mixed; boundary="b;1"; name="' + "A" * 10_000 + '"' + ";" * 10_000
    header = POLICY.header_factory("Content-Type", value)
    assert str(header) == 'multipart/mixed; boundary="b;1"'
    assert header.params == {"boundary": "b;1"}  # type: ignore[attr-defined]


def test_a_parameter_past_the_readable_length_is_not_seen() -> None:
    value = 'multipart/mixed; name="' + "A" * 100_000 + '"; boundary="b"'
    assert str(POLICY.header_factory("Content-Type", value)) == "multipart/mixed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("text", "text/plain"), ("text/plain/x", "text/plain"), ('"a"/b', "text/plain")],
)
def test_a_content_type_that_is_no_media_type_is_text_plain(value: str, expected: str) -> None:
    # RFC 2045 §5.2: a syntactically invalid Content-Type is taken as text/plain.
    assert str(POLICY.header_factory("Content-Type", value)) == expected


def test_transfer_encoding_is_the_first_word_lower_case() -> None:
    assert str(POLICY.header_factory("Content-Transfer-Encoding", " Base64 (x) junk")) == "base64"
    assert str(POLICY.header_factory("Content-Transfer-Encoding", "x" * 100_000)) == "x" * 64
    assert str(POLICY.header_factory("Content-Transfer-Encoding", "(" * 100_000)) == ""


def _nested(depth: int, body: str) -> bytes:
    """A message whose multiparts nest `depth` deep, `body` in the innermost text part."""
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="{"b" * (level + 1)}"\n\n--{"b" * (level + 1)}\n'
        for level in range(depth)
    )
    return ("Subject: deep\n" + head + "Content-Type: text/plain\n\n" + body).encode()


def _depth(message: Message) -> int:
    children = message.get_payload()
    if not isinstance(children, list) or not children:
        return 0
    return 1 + max(_depth(child) for child in children if isinstance(child, Message))


def test_the_parser_splits_multiparts_no_deeper_than_the_nesting_limit() -> None:
    # The stdlib's feedparser tests every body line against the boundary of each enclosing
    # multipart: nesting as deep as the message is long cost time in proportion to its square
    # (800 levels over 80,000 lines: 10 s). Below the limit a multipart is one part of text.
    within = BytesParser(policy=POLICY).parsebytes(_nested(MAX_NESTING, "inner\n"))
    assert _depth(within) == MAX_NESTING
    deeper = BytesParser(policy=POLICY).parsebytes(_nested(5 * MAX_NESTING, "x\n" * 1000))
    assert _depth(deeper) == MAX_NESTING
    innermost: Message = deeper
    for _ in range(MAX_NESTING):
        payload = innermost.get_payload()
        assert isinstance(payload, list)
        innermost = payload[0]
    text = innermost.get_payload()
    assert isinstance(text, str) and text.endswith("x\n" * 1000)

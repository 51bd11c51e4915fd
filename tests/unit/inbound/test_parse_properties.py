"""Properties of parse_message over generated messages: random MIME trees built part by part
(with lying charsets, every transfer encoding, RFC 2231 and RFC 2047 file names), random
headers with encoded words that hide line breaks, corpus messages mutated byte by byte, and
plain random bytes.

For every input: no exception; the subject and ids are one line; every attachment's size is the
length of its decoded bytes; addresses are lower-case; issue keys are whole keys; the JSON is
plain JSON. For generated trees also: every binary attachment comes back byte for byte.
"""

from __future__ import annotations

import base64
import json
import quopri
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.inbound.addresses import _full, _simple
from mailgate.inbound.parse import InboundMessage, parse_message

CORPUS = [
    path.read_bytes()
    for path in sorted((Path(__file__).resolve().parents[2] / "data" / "mail").glob("*.eml"))
]
WHOLE_KEY = re.compile(r"[A-Z][A-Z0-9_]+-[0-9]+")
LINE_BREAKS = ("\r", "\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c")
# About eight seconds in all; run with more examples when changing the parser.
GENERATED = settings(max_examples=350, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MUTATED = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RANDOM = settings(max_examples=300, deadline=None)


def check(message: InboundMessage) -> None:
    for one_line in (
        message.subject,
        message.message_id or "",
        message.in_reply_to or "",
        message.from_name or "",
        *message.references,
        *(attachment.filename for attachment in message.attachments),
    ):
        assert not any(brk in one_line for brk in LINE_BREAKS), repr(one_line)
    for attachment in message.attachments:
        assert attachment.size == len(attachment.data)
    for address in (message.from_address, *message.to, *message.cc):
        assert address == address.lower()
    for key in message.issue_keys:
        assert WHOLE_KEY.fullmatch(key), key
        assert key in message.subject
    assert message.date is None or message.date.tzinfo is not None
    assert "\x00" not in message.body_text and "\x00" not in message.reply_text
    json.dumps(message.as_json("generated.eml"))


# --- generated MIME trees -------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "windows-1252", "x-bogus", ""])
encodings = st.sampled_from(["7bit", "8bit", "quoted-printable", "base64", ""])


# Header text without line breaks or other controls: a raw CR or LF would end the header (the
# generated message would not be the one meant); encoded words carry those instead.
header_text = text.map(lambda t: "".join(ch for ch in t if ch.isprintable() and ch not in '"\\'))


@dataclass
class Leaf:
    headers: list[tuple[str, str]]
    body: bytes
    binary: bytes | None = None  # the decoded bytes of a binary attachment


@dataclass
class Multi:
    subtype: str
    children: list[Leaf | Multi | Embedded]


@dataclass
class Embedded:
    message: Leaf | Multi


def _encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def text_parts(draw: st.DrawFn) -> Leaf:
    subtype = draw(st.sampled_from(["plain", "html"]))
    content = draw(text)
    if subtype == "html":
        content = f"<div>{content}</div><blockquote type=cite>{draw(text)}</blockquote>"
    real = draw(st.sampled_from(["utf-8", "latin-1", "cp1252"]))
    declared = draw(charsets)  # may lie about `real`
    encoding = draw(encodings)
    content_type = f"text/{subtype}" + (f"; charset={declared}" if declared else "")
    if draw(st.booleans()):
        content_type += "; format=flowed; delsp=yes"
    headers = [("Content-Type", content_type)]
    if encoding:
        headers.append(("Content-Transfer-Encoding", encoding))
    return Leaf(headers, _encode(content.encode(real, "replace"), encoding))


@st.composite
def binary_parts(draw: st.DrawFn) -> Leaf:
    data = draw(st.binary(max_size=300))
    maintype = draw(st.sampled_from(["image/png", "application/pdf", "application/ms-tnef"]))
    headers = [("Content-Type", maintype), ("Content-Transfer-Encoding", "base64")]
    name = draw(text)
    style = draw(st.sampled_from(["none", "2231", "2047", "quoted"]))
    disposition = draw(st.sampled_from(["attachment", "inline", ""]))
    if style == "2231":
        params = f"; filename*=utf-8''{quote(name.encode('utf-8', 'replace'))}"
    elif style == "2047":
        encoded = base64.b64encode(name.encode("utf-8", "replace")).decode()
        params = f'; filename="=?utf-8?B?{encoded}?="'
    elif style == "quoted":
        printable = "".join(ch for ch in name if " " <= ch <= "~" and ch not in '"\\')
        params = f'; filename="{printable}"'
    else:
        params = ""
    if disposition or params:
        headers.append(("Content-Disposition", (disposition or "attachment") + params))
    if draw(st.booleans()):
        headers.append(("Content-ID", f"<{draw(st.uuids())}@example.org>"))
    return Leaf(headers, base64.encodebytes(data), binary=data)


trees = st.recursive(
    st.one_of(text_parts(), binary_parts()),
    lambda children: st.one_of(
        st.builds(
            Multi,
            st.sampled_from(["mixed", "alternative", "related", "report", "signed"]),
            st.lists(children, min_size=1, max_size=4),
        ),
        st.builds(Embedded, children),
    ),
    max_leaves=8,
)


def _serialize(node: Leaf | Multi | Embedded, counter: list[int]) -> bytes:
    if isinstance(node, Leaf):
        head = "".join(f"{name}: {value}\r\n" for name, value in node.headers)
        return head.encode("utf-8") + b"\r\n" + node.body
    if isinstance(node, Embedded):
        inner = b"Subject: inner\r\nFrom: Inner <Inner@Example.org>\r\n" + _serialize(
            node.message, counter
        )
        return b"Content-Type: message/rfc822\r\n\r\n" + inner
    counter[0] += 1
    boundary = f"=_b{counter[0]}_7f3a"
    out = f'Content-Type: multipart/{node.subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    for child in node.children:
        out += f"--{boundary}\r\n".encode() + _serialize(child, counter) + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _binaries(node: Leaf | Multi | Embedded) -> list[bytes]:
    if isinstance(node, Leaf):
        return [node.binary] if node.binary is not None else []
    if isinstance(node, Embedded):
        return []  # inside the .eml attachment
    return [data for child in node.children for data in _binaries(child)]


def _encoded_word(data: bytes, charset: str, q: bool) -> str:
    if q:
        payload = "".join(
            chr(b) if 48 <= b < 123 and chr(b).isalnum() else f"={b:02X}" for b in data
        )
        return f"=?{charset}?Q?{payload}?="
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


@st.composite
def header_values(draw: st.DrawFn) -> str:
    """Text, folded lines, and encoded words whose decoded bytes hold CR, LF, NUL or keys."""
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["text", "word", "key", "fold"]))
        if kind == "text":
            pieces.append(draw(header_text))
        elif kind == "key":
            pieces.append(draw(st.from_regex(r"[A-Za-z][A-Z0-9_]{0,5}-[0-9]{1,4}", fullmatch=True)))
        elif kind == "fold":
            pieces.append("\r\n ")
        else:
            data = draw(st.one_of(st.binary(max_size=30), st.just(b"a\r\nBcc: x@example.org")))
            charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "x-bogus", "utf-16"]))
            pieces.append(_encoded_word(data, charset, draw(st.booleans())))
    return " ".join(pieces)


addresses = st.one_of(
    st.emails().map(lambda e: f"{e.upper()}"),
    st.builds(lambda name, e: f'"{name}" <{e}>', header_text, st.emails()),
    header_values(),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    tree = draw(trees)
    headers = [
        ("Subject", draw(header_values())),
        ("From", draw(addresses)),
        ("To", ", ".join(draw(st.lists(addresses, max_size=3)))),
        ("Cc", draw(addresses)),
        ("Message-ID", f"<{draw(header_text)}@example.org>"),
        ("Date", draw(st.sampled_from(["Mon, 6 Jan 2025 10:15:00 +0100", "garbage", ""]))),
        ("MIME-Version", "1.0"),
    ]
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    ("Auto-Submitted", "auto-replied"),
                    ("Precedence", "bulk"),
                    ("List-Id", "<l.example.org>"),
                    ("X-Mailgate-Fingerprint", "v1"),
                    ("Return-Path", "<>"),
                    ("Subject", "second subject"),
                ]
            ),
            max_size=3,
        )
    )
    head = "".join(f"{name}: {value}\r\n" for name, value in headers + extra)
    counter = [0]
    return head.encode("utf-8", "surrogateescape") + _serialize(tree, counter), _binaries(tree)


@GENERATED
@given(messages())
def test_generated_messages(generated: tuple[bytes, list[bytes]]) -> None:
    raw, binaries = generated
    message = parse_message(raw)
    check(message)
    found = Counter(attachment.data for attachment in message.attachments)
    assert Counter(binaries) - found == Counter()


# --- mutated corpus and random bytes --------------------------------------------------------

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate", "cr", "header"]),
        st.floats(0, 1),
        st.binary(min_size=1, max_size=40),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(raw: bytes, steps: list[tuple[str, float, bytes]]) -> bytes:
    data = bytearray(raw)
    for op, where, blob in steps:
        at = int(where * len(data))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= blob[0] or 0x80
        elif op == "insert":
            data[at:at] = blob
        elif op == "delete":
            del data[at : at + len(blob) * 8]
        elif op == "duplicate":
            data[at:at] = data[at : at + len(blob) * 16]
        elif op == "truncate":
            del data[at:]
        elif op == "cr":
            data = bytearray(bytes(data).replace(b"\n", b"\r", blob[0] % 8 + 1))
        else:
            data[0:0] = b"X-" + blob.replace(b"\n", b"") + b": " + blob + b"\r\n"
    return bytes(data)


@MUTATED
@given(st.sampled_from(CORPUS), mutations)
def test_mutated_corpus(raw: bytes, steps: list[tuple[str, float, bytes]]) -> None:
    check(parse_message(_mutate(raw, steps)))


@RANDOM
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    check(parse_message(raw))


@RANDOM
@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=80)), max_size=8),
    st.binary(max_size=300),
)
def test_random_header_blocks(fields: list[tuple[bytes, bytes]], body: bytes) -> None:
    head = b"".join(name.replace(b":", b"") + b": " + value + b"\r\n" for name, value in fields)
    check(parse_message(head + b"\r\n" + body))


# --- the fast path for plain address lists agrees with the full parser ----------------------

plain_names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"()\\:;[]<>@,'),
    max_size=20,
)
plain_mailboxes = st.one_of(
    st.emails(), st.builds(lambda name, email: f"{name} <{email}>", plain_names, st.emails())
)


@settings(max_examples=100, deadline=None)  # generating addresses is slow
@given(st.lists(plain_mailboxes, min_size=1, max_size=4))
def test_simple_address_lists_read_as_the_full_parser_reads_them(mailboxes: list[str]) -> None:
    value = ", ".join(mailboxes)
    simple = _simple(value)
    assert simple is None or simple == _full(value, []).mailboxes

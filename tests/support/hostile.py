"""Hostile and odd mail, generated: what anyone on the internet can send to a desk's mailbox.

`PATHOLOGICAL` holds the messages that once cost minutes of CPU or gigabytes each (address
headers and parameters that the standard library parses in quadratic time, unclosed <script>
tags). `KINDS` builds messages of each kind the fuzz test and `bench/hostile.py` draw from,
seeded by a `random.Random`: truncated MIME, bad boundaries, deep nesting, huge headers and
parameters, invalid charsets and transfer encodings, NUL and bare CR, 8-bit headers,
encoded-word abuse, duplicate Message-IDs, empty messages, many parts, archive bombs and hostile
file names.
"""

from __future__ import annotations

import base64
import io
import random
import zipfile
from collections.abc import Callable

CRLF = b"\r\n"


def _head(rng: random.Random, **fields: bytes) -> bytes:
    """A header block: From, To, Subject, Message-ID (one of a small pool: duplicates happen),
    Date, then the fields given (None-free), ending with the blank line."""
    n = rng.randrange(1_000_000)
    base = {
        "From": f"Customer {n} <customer{n % 50}@example.net>".encode(),
        "To": b"help@example.com",
        "Subject": f"Hostile {n}".encode(),
        "Message-ID": f"<hostile-{rng.randrange(40)}@example.net>".encode(),
        "Date": b"Tue, 1 Dec 2026 10:00:00 +0000",
    }
    base.update({name.replace("_", "-"): value for name, value in fields.items()})
    return b"".join(name.encode() + b": " + value + CRLF for name, value in base.items()) + CRLF


def _text(rng: random.Random, size: int = 200) -> bytes:
    words = [b"printer", b"broken", b"please", b"help", b"\xc3\xa9t\xc3\xa9", b"ok"]
    return b" ".join(rng.choice(words) for _ in range(size // 6)) + CRLF


def _multipart(rng: random.Random, parts: list[bytes], boundary: bytes = b"b0undary") -> bytes:
    body = b"".join(b"--" + boundary + CRLF + part + CRLF for part in parts)
    return body + b"--" + boundary + b"--" + CRLF


def _plain_part(rng: random.Random) -> bytes:
    return b"Content-Type: text/plain; charset=utf-8" + CRLF + CRLF + _text(rng)


def truncated(rng: random.Random) -> bytes:
    parts = [_plain_part(rng), _attachment(rng, b"report.pdf", rng.randbytes(2000))]
    head = _head(rng, Content_Type=b'multipart/mixed; boundary="b0undary"')
    whole = head + _multipart(rng, parts)
    return whole[: rng.randrange(1, len(whole))]


def bad_boundary(rng: random.Random) -> bytes:
    declared = rng.choice([b"", b'""', b'"a b"', b"x" * 5000, b'"--"', b"\\", b"b0undary"])
    used = rng.choice([b"b0undary", b"other", b"", b"b0undary--"])
    head = _head(rng, Content_Type=b"multipart/mixed; boundary=" + declared)
    return head + _multipart(rng, [_plain_part(rng), _plain_part(rng)], used)


def nesting(rng: random.Random) -> bytes:
    depth = rng.randrange(20, 400)
    inner = _plain_part(rng)
    for level in range(depth):
        boundary = f"nest{level}".encode()
        if rng.random() < 0.3:
            inner = b"Content-Type: message/rfc822" + CRLF + CRLF + _head(rng)[:-2] + inner
        else:
            inner = (
                b'Content-Type: multipart/mixed; boundary="'
                + boundary
                + b'"'
                + CRLF
                + CRLF
                + _multipart(rng, [inner], boundary)
            )
    return _head(rng, MIME_Version=b"1.0")[:-2] + inner


def huge_header(rng: random.Random) -> bytes:
    size = rng.randrange(10_000, 200_000)
    name = rng.choice(["Subject", "From", "To", "Cc", "References", "Message-ID", "X-Junk"])
    filler = rng.choice(
        [
            b"x " * (size // 2),
            b'"x x x ' + b"x " * (size // 2) + b'" <a@b.test>',
            b"=?utf-8?q?x?= <q@b.test>, " * (size // 25),
            b"<ref@x.test> " * (size // 13),
            b"(" * size,
            b"\\" * size,
            b"a@b.test," * (size // 9),
        ]
    )
    return _head(rng, **{name: filler}) + _text(rng)


def huge_parameter(rng: random.Random) -> bytes:
    size = rng.randrange(10_000, 500_000)
    if rng.random() < 0.5:
        parameter = b'name="' + b"A" * size + b'"'
    else:  # RFC 2231 continuations, many pieces
        parameter = b"; ".join(
            f"name*{i}*=utf-8''%41%42".encode() for i in range(rng.randrange(100, 5000))
        )
    part = b"Content-Type: application/octet-stream; " + parameter + CRLF
    part += b"Content-Transfer-Encoding: base64" + CRLF + CRLF + base64.b64encode(b"data")
    head = _head(rng, Content_Type=b'multipart/mixed; boundary="b0undary"')
    return head + _multipart(rng, [_plain_part(rng), part])


def bad_charset(rng: random.Random) -> bytes:
    charset = rng.choice(
        [b"x-unknown", b"utf-7", b"utf-8", b"iso-2022-jp", b"utf-16", b"", b"'\"", b"cp1252"]
    )
    body = rng.choice(
        [
            b"caf\xe9 cr\xe8me",
            b"\x1b$B\x1b(B\x1b$Bbroken",
            b"\xff\xfe\x00d\x00",
            b"+AGEAYgBj-",
            rng.randbytes(300),
        ]
    )
    encoding = rng.choice([b"8bit", b"base64", b"quoted-printable", b"x-uuencode", b"bogus"])
    if encoding == b"base64" and rng.random() < 0.5:
        body = b"!!!not base64###" + body
    elif encoding == b"quoted-printable":
        body = b"=ZZ=\r\n=4" + body + b"="
    return (
        _head(
            rng,
            Content_Type=b"text/plain; charset=" + charset,
            Content_Transfer_Encoding=encoding,
        )
        + body
    )


def nul_and_bare_cr(rng: random.Random) -> bytes:
    return (
        _head(rng, Subject=b"nul\x00in\rsubject", X_Weird=b"a\rb\x00c")
        + b"body\x00with\rbare\rcr\x00"
        + CRLF
    )


def eight_bit_headers(rng: random.Random) -> bytes:
    return _head(
        rng,
        Subject=rng.choice([b"Gr\xfc\xdfe", "Grüße".encode(), b"\xc3\x28", b"\xff\xfe"]),
        From=rng.choice([b"J\xf6rg <j\xf6rg@example.net>", "Jörg <jörg@exämple.net>".encode()]),
    ) + _text(rng)


def encoded_word_abuse(rng: random.Random) -> bytes:
    choices = [
        b"=?utf-8?q?Eve=0D=0ATo:_victim3@evil.test?= <eve@attacker.test>",
        b"=?utf-8?b?" + base64.b64encode(b"a@b.test") + b"?=",
        b"=?x-bogus?q?abc?= <x@example.net>",
        b"=?utf-8?q?" + b"=41" * 20000 + b"?= <y@example.net>",
        b"=?=?utf-8?q?nested?=?= <z@example.net>",
        b" ".join(b"=?utf-8?q?w%d?=" % i for i in range(5000)) + b" <w@example.net>",
        b"Eve: ceo@victim-corp.test; <attacker@attacker.test>",
        b"ceo@victim-corp.test <attacker@attacker.test>",
    ]
    return _head(rng, From=rng.choice(choices), Subject=rng.choice(choices)) + _text(rng)


def duplicate_message_id(rng: random.Random) -> bytes:
    return _head(rng, Message_ID=b"<the-same-id@example.net>") + _text(rng)


def empty(rng: random.Random) -> bytes:
    return rng.choice([b"", CRLF, CRLF * 3, b"Subject: only headers\r\n", b"\r\n\r\nbody only"])


def many_parts(rng: random.Random) -> bytes:
    parts = [_plain_part(rng) for _ in range(rng.randrange(500, 4000))]
    head = _head(rng, Content_Type=b'multipart/mixed; boundary="b0undary"')
    return head + _multipart(rng, parts)


def _attachment(rng: random.Random, name: bytes, data: bytes) -> bytes:
    return (
        b"Content-Type: application/octet-stream"
        + CRLF
        + b'Content-Disposition: attachment; filename="'
        + name
        + b'"'
        + CRLF
        + b"Content-Transfer-Encoding: base64"
        + CRLF
        + CRLF
        + base64.encodebytes(data).replace(b"\n", CRLF)
    )


def archive_bomb(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * rng.randrange(10_000_000, 50_000_000))
    head = _head(rng, Content_Type=b'multipart/mixed; boundary="b0undary"')
    parts = [_plain_part(rng), _attachment(rng, b"bomb.zip", buffer.getvalue())]
    return head + _multipart(rng, parts)


def hostile_file_names(rng: random.Random) -> bytes:
    names = [
        b"../../etc/passwd",
        b"/etc/shadow",
        b"CON",
        b"a\x00b.exe",
        b"invoice\xe2\x80\xaefdp.exe",  # right-to-left override
        b"x" * 10_000,
        b"=?utf-8?q?..=2F..=2Fevil.sh?=",
        b"\r\nX-Injected: yes",
        b"",
        b".",
    ]
    parts = [_plain_part(rng)] + [_attachment(rng, name, b"data") for name in names]
    head = _head(rng, Content_Type=b'multipart/mixed; boundary="b0undary"')
    return head + _multipart(rng, parts)


KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "truncated": truncated,
    "bad-boundary": bad_boundary,
    "nesting": nesting,
    "huge-header": huge_header,
    "huge-parameter": huge_parameter,
    "bad-charset": bad_charset,
    "nul-and-bare-cr": nul_and_bare_cr,
    "8bit-headers": eight_bit_headers,
    "encoded-word-abuse": encoded_word_abuse,
    "duplicate-message-id": duplicate_message_id,
    "empty": empty,
    "many-parts": many_parts,
    "archive-bomb": archive_bomb,
    "hostile-file-names": hostile_file_names,
}


def _pathological(name: str, head_fields: dict[str, bytes], body: bytes) -> bytes:
    rng = random.Random(name)
    return _head(rng, **head_fields) + body


# The messages of issue 10's first finding, at the sizes that once cost minutes and gigabytes.
PATHOLOGICAL: dict[str, Callable[[], bytes]] = {
    "quoted From of 128 KB": lambda: _pathological(
        "from",
        {"From": b'"' + b"x " * 65_536 + b'" <customer@example.net>'},
        b"hello" + CRLF,
    ),
    "Cc of 1 MB of encoded words": lambda: _pathological(
        "cc", {"Cc": b", ".join([b"=?utf-8?q?x?= <q@b.test>"] * 40_000)}, b"hello" + CRLF
    ),
    "name parameter of 10 MB": lambda: _pathological(
        "param",
        {"Content-Type": b'multipart/mixed; boundary="b0undary"'},
        _multipart(
            random.Random(0),
            [
                b"Content-Type: text/plain" + CRLF + CRLF + b"see attached" + CRLF,
                b'Content-Type: application/octet-stream; name="'
                + b"A" * 10_000_000
                + b'"'
                + CRLF
                + CRLF
                + b"data",
            ],
        ),
    ),
    "10,000 unclosed script tags": lambda: _pathological(
        "script",
        {"Content-Type": b"text/html; charset=utf-8"},
        b"<html><body><p>Hello</p>" + b"<script>x" * 10_000 + b"</body></html>" + CRLF,
    ),
}

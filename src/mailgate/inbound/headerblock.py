"""A message's top-level header block bounded and mended before the stdlib parser reads it.

Bounded: at most `MAX_FIELDS` fields, each at most `MAX_FIELD` bytes, `MAX_BLOCK` bytes in all;
what is over is cut or left out, and said so — and never split into lines or pieces, so a long
block costs no more memory than a copy of it. A block with CR line ends only is read with LF
ends. Mended, as mature mail readers do:

- a bare CR inside the block (RFC 5322 §2.2: CR and LF only as CRLF) is read as a space, not
  as a line end that would push the rest of the header into the body;
- a line that is neither a field nor indented, followed later in the block by a well-known
  field, is a continuation whose folding white space a gateway lost; text before the first
  field (a forwarding tool's "---- Original email message ----") is dropped.

Without either mend the stdlib ends the header at such a line and reads From and Subject as
body text. A line that is not a field with no well-known field after it is where the body
starts, as the stdlib reads it (a message that forgot its blank line).
"""

from __future__ import annotations

import re

__all__ = ["MAX_BLOCK", "MAX_FIELD", "MAX_FIELDS", "bound_header_block"]

MAX_FIELDS = 1000  # a message through a dozen relays carries about 100
MAX_FIELD = 64 * 1024  # a field, continuation lines included: real Cc lists run to tens of KB
MAX_BLOCK = 512 * 1024

# The stdlib feedparser's own test for a header line (email.feedparser.headerRE).
_FIELD_OR_CONTINUATION = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_FIELD_NAME = re.compile(rb"([\041-\071\073-\176]+)[ \t]*:")
_BARE_CR = re.compile(rb"\r(?!\n)")
_BLANK_LINE = re.compile(rb"\n\r?\n")
# A line that is neither a field nor a continuation, searched for after a "\n" (a literal
# first character lets the search skip ahead to each line start).
_ODD_LINE = re.compile(rb"\n(?!From |[\041-\071\073-\176]*:|[\t ])(?=[^\r\n])")
# A field as the stdlib's feedparser groups lines: a line and the indented lines below it.
# (A bare CR is white space here: it is read as a space.)
_FIELD_LINES = re.compile(rb"[^\n]*+\n?(?:(?:[\t ]|\r(?!\n))[^\n]*+\n?)*+")
# Fields every message has: seeing one of them below an odd line shows the header goes on.
_WELL_KNOWN = frozenset(
    {
        b"from",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"received",
        b"return-path",
        b"reply-to",
        b"sender",
        b"in-reply-to",
        b"references",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)
_KNOWN_FIELD_LINE = re.compile(
    rb"^(?:" + rb"|".join(sorted(_WELL_KNOWN)) + rb")[ \t]*:", re.IGNORECASE | re.MULTILINE
)
# Address fields are cut after a comma, so the cut never leaves half an address.
_ADDRESS_FIELDS = frozenset(
    {b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc", b"resent-from", b"resent-to"}
)


def bound_header_block(data: bytes) -> tuple[bytes, list[str]]:
    """`data` with its header block mended and cut to the limits, and a note for each change;
    `data` itself (the same object) when nothing needed doing. Linear in the block's length,
    and in memory bounded by the limits: what lies past them is looked through, never split up
    (10 MB of bare CRs or of continuation lines once took close to a gigabyte as pieces)."""
    if b"\n" not in data:
        if b"\r" not in data:
            return data, []  # one line
        # CR-only line ends (classic Mac OS files), which the stdlib reads as line ends: the
        # block and the blank line after it are read with LF ends, and bounded like any.
        blank = data.find(b"\r\r")
        end = len(data) if blank < 0 else blank + 2
        if not _needs_work(data[:end].replace(b"\r", b"\n")):
            return data, []
        data = data[:end].replace(b"\r", b"\n") + data[end:]
    end = _block_end(data)
    head = data[:end]
    if not _needs_work(head):
        return data, []
    rest = data[end:]
    notes: list[str] = []
    if b"\r" in head and _BARE_CR.search(head):
        notes.append("a bare CR in the header was read as a space")
    fields, tail = _mend(head, notes)
    kept = _limit(fields, notes)
    return b"".join(kept) + _spaced(tail) + rest, notes


def _block_end(data: bytes) -> int:
    """Where the blank line that ends the block starts (after the last field's line end)."""
    if data.startswith((b"\n", b"\r\n")):
        return 0
    blank = _BLANK_LINE.search(data)  # one pass that stops at the first: bodies are long
    return blank.start() + 1 if blank else len(data)


def _needs_work(head: bytes) -> bool:
    return (
        len(head) > MAX_FIELD
        or head.count(b"\n") > MAX_FIELDS
        or (b"\r" in head and _BARE_CR.search(head) is not None)
        or _ODD_LINE.search(b"\n" + head) is not None
    )


def _mend(head: bytes, notes: list[str]) -> tuple[list[list[bytes]], bytes]:
    """The fields (a field line and its continuation lines, in pieces), odd lines before the
    last well-known field mended; and the text from the first odd line after it on, left as it
    is (the stdlib reads it as the body). Fields past what `_limit` keeps are not collected,
    nor a field's text past `MAX_FIELD`."""
    last_known = max((found.start() for found in _KNOWN_FIELD_LINE.finditer(head)), default=-1)
    fields: list[list[bytes]] = []
    sizes: list[int] = []
    total = 0
    for found in _FIELD_LINES.finditer(head):
        piece, start = _spaced(_bounded(found.group())), found.start()
        if not piece:
            break  # the end
        if len(fields) > MAX_FIELDS or total > MAX_BLOCK:
            # Nothing from here on is kept: only where the body starts is still looked for.
            odd = _ODD_LINE.search(head, max(start, last_known + 1) - 1)
            return fields, head[odd.start() + 1 :] if odd else b""
        if _FIELD_OR_CONTINUATION.match(piece) and not (piece[:1] in (b" ", b"\t") and fields):
            fields.append([])
            sizes.append(0)
        elif _FIELD_OR_CONTINUATION.match(piece):
            pass  # indented: a continuation of the field above (the pattern already joined it)
        elif start > last_known:
            return fields, head[start:]
        elif fields:
            piece = b" " + piece
            _note(notes, "header lines without their leading white space were read as continued")
        else:
            _note(notes, "text before the first header field was ignored")
            continue
        if sizes[-1] <= MAX_FIELD:
            fields[-1].append(piece)
            total += min(len(piece), MAX_FIELD + 1 - sizes[-1])
            sizes[-1] += len(piece)
    return fields, b""


def _bounded(piece: bytes) -> bytes:
    """The first `MAX_FIELD` bytes of a piece of a field and its line end: `_cut` cuts there."""
    if len(piece) <= MAX_FIELD + 2:
        return piece
    ending = b"\r\n" if piece.endswith(b"\r\n") else b"\n" if piece.endswith(b"\n") else b""
    return piece[:MAX_FIELD] + ending


def _spaced(text: bytes) -> bytes:
    """Each bare CR read as a space (RFC 5322 §2.2: CR and LF only as CRLF)."""
    if b"\r" not in text:
        return text
    if b"\r\n" not in text:
        return text.replace(b"\r", b" ")
    return text.replace(b"\r\n", b"\n").replace(b"\r", b" ").replace(b"\n", b"\r\n")


def _limit(fields: list[list[bytes]], notes: list[str]) -> list[bytes]:
    kept: list[bytes] = []
    total = 0
    for count, lines in enumerate(fields):
        field = b"".join(lines)
        if count >= MAX_FIELDS:
            notes.append(f"more than {MAX_FIELDS} header fields; the rest were ignored")
            break
        if len(field) > MAX_FIELD:
            field = _cut(field)
            notes.append(f"the {_label(field)} header is longer than {MAX_FIELD} bytes; it was cut")
        if total + len(field) > MAX_BLOCK:
            notes.append(f"the header is longer than {MAX_BLOCK} bytes; the rest was ignored")
            break
        total += len(field)
        kept.append(field)
    return kept


def _cut(field: bytes) -> bytes:
    """The field cut to `MAX_FIELD` bytes: after the last comma for an address field (so no
    address is cut in two, which could read as another), else at white space near the end,
    else at a character boundary (never inside a UTF-8 sequence)."""
    line_end = b"\r\n" if field.endswith(b"\r\n") else b"\n"
    cut = field[: MAX_FIELD - len(line_end)]
    name = _FIELD_NAME.match(cut)
    comma = cut.rfind(b",")
    if name and name.group(1).lower() in _ADDRESS_FIELDS and comma > name.end():
        cut = cut[: comma + 1]
    else:
        # Without a comma an address field is one entry longer than any address reader reads
        # (`addresses.MAX_ENTRY`), unless the rest is a comment: cutting it anywhere is safe.
        space = max(cut.rfind(b" ", -1024), cut.rfind(b"\t", -1024))
        cut = cut[:space] if space > 0 else _whole_characters(cut)
    return cut.rstrip(b"\r\n") + line_end


def _whole_characters(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut short at its end (raw UTF-8 is allowed in headers,
    RFC 6532; a broken sequence would turn the whole value to Windows-1252)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:
            length = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2
            return data if back >= length else data[:-back]
    return data


def _label(field: bytes) -> str:
    name = _FIELD_NAME.match(field)
    return name.group(1).decode("ascii", "replace")[:40] if name else "unnamed"


def _note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)

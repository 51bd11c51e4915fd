"""Header values made safe: decoded text on one line, message ids, dates, and the receiving
provider's Authentication-Results; and `POLICY`, the stdlib parsing policy fed only bounded values.

Every function takes the raw (unfolded or not) value as the parser stored it, never raises, and
costs time linear in the value: a header a sender broke yields what can be read of it, or
nothing. Addresses are read in `addresses`.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from typing import Any

from mailgate.inbound.charsets import decode_bytes
from mailgate.inbound.parameters import (
    canonical_content_type,
    canonical_disposition,
    canonical_transfer_encoding,
)

__all__ = [
    "MAX_ID",
    "MAX_NESTING",
    "POLICY",
    "AuthResults",
    "decode_text",
    "first_message_id",
    "message_ids",
    "one_line",
    "parse_auth_results",
    "parse_date",
    "repair_8bit",
]

# Every character that ends a line somewhere (str.splitlines' set) or is another control
# character: none of them may reach a subject, a name or an id.
_LINE_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACE_RUNS = re.compile(r"\s+")
_SURROGATE = re.compile("[\udc80-\udcff]")
# RFC 2047 §2 allows no white space inside an encoded word, yet clients write it there
# ("=?us-ascii?Q?ABC / 123?=", "=?UTF-8?Q? Personal=C3=A4nderung?="); mature readers decode
# them. The text stops at the next "?", so each match costs no more than its own length.
_ENCODED_WORD_PARTS = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
# RFC 5322 §2.1.1: a line holds at most 998 characters; a longer id is no id a client wrote.
MAX_ID = 998
_MAX_DATE = 256


class _BoundedRegistry(HeaderRegistry):
    """policy.default's header classes, fed only values whose parse costs little.

    The stdlib parses a header on every access, and its parser costs time that grows with the
    square of the value (64 KB of ";" in a Content-Disposition: 25 s) and recurses once per
    nested comment (RecursionError at about 1,000). The feedparser itself reads Content-Type
    and Content-Transfer-Encoding of every part, so those three MIME headers are rebuilt short
    from a linear reading (`parameters`) before the stdlib sees them; any other header is cut
    to one line's length with deep comments flattened. Parsed headers are kept for reuse:
    header objects are immutable, so sharing one between messages is safe."""

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if not isinstance(value, str):
            return _PLAIN_REGISTRY(name, value)
        if len(value) <= _MEMO_MAX_VALUE:
            return _parse_source(name, value)
        return _parse_header(name, _bounded(name, value))


class _ClassCachingRegistry(HeaderRegistry):
    """The stdlib registry builds a new header class with `type()` on every lookup; build each
    once."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


_PLAIN_REGISTRY = _ClassCachingRegistry()
_CANONICAL: dict[str, Callable[[str], str]] = {
    "content-type": canonical_content_type,
    "content-disposition": canonical_disposition,
    "content-transfer-encoding": canonical_transfer_encoding,
}
_MAX_STRUCTURED = 998  # RFC 5322 §2.1.1, one line
_MAX_PARENTHESES = 16
_NO_PARENTHESES = str.maketrans("()", "  ")


def _bounded(name: str, value: str) -> str:
    canonical = _CANONICAL.get(name.lower())
    if canonical is not None:
        return canonical(value)
    value = value[:_MAX_STRUCTURED]
    if value.count("(") > _MAX_PARENTHESES:
        value = value.translate(_NO_PARENTHESES)
    return value


_MEMO_MAX_VALUE = 1024  # with 4096 entries per cache: a few MB at most


@functools.lru_cache(maxsize=4096)
def _parse_source(name: str, value: str) -> BaseHeader:
    return _parse_header(name, _bounded(name, value))


@functools.lru_cache(maxsize=4096)
def _parse_header(name: str, value: str) -> BaseHeader:
    return _PLAIN_REGISTRY(name, value)


# How deep a part may sit below the message (each multipart and message/* level counts one) and
# still be split into parts: no client nests deeper.
MAX_NESTING = 32


class _NestedMessage(EmailMessage):
    """policy.default's message class, knowing its depth in the MIME tree.

    The feedparser tests every body line against the boundary of each enclosing multipart, so
    nesting costs time in proportion to depth times lines, and nesting as deep as the message is
    long costs its square (800 levels over 80,000 lines: 10 s). A multipart at `MAX_NESTING`
    gives the feedparser no boundary, and its body is read as one part of text
    (NoBoundaryInMultipartDefect): its bytes stay, unsplit."""

    _depth = 0

    def attach(self, payload: Any) -> None:
        # The feedparser attaches each part to its parent before it reads the part's headers.
        if isinstance(payload, _NestedMessage):
            payload._depth = self._depth + 1
        super().attach(payload)

    def get_boundary(self, failobj: Any = None) -> Any:
        if self._depth >= MAX_NESTING:
            return failobj
        return super().get_boundary(failobj)


# policy.default (RFC 5322 semantics, never compat32), with bounded, memoised header parsing and
# bounded MIME nesting.
POLICY = policy.default.clone(header_factory=_BoundedRegistry(), message_factory=_NestedMessage)


def repair_8bit(value: str) -> str:
    """Raw 8-bit bytes in a header (RFC 6532 allows UTF-8) arrive surrogate-escaped from the
    parser: read them as UTF-8, else as Windows-1252."""
    if value.isascii() or not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def one_line(text: str) -> str:
    """CR, LF and every other line break or control character become one space."""
    return _SPACE_RUNS.sub(" ", _LINE_BREAKS_AND_CONTROLS.sub(" ", text)).strip()


def decode_text(raw: str) -> str:
    """An unstructured header (Subject, a display name) decoded from RFC 2047 encoded words,
    on one line. Broken encoded words and unknown charsets decode as far as they can."""
    value = repair_8bit(raw)
    if "=?" in value:
        value = _decode_words(value)
    return one_line(value)


def _decode_words(value: str) -> str:
    """RFC 2047 decoding done leniently: white space between two encoded words is dropped
    (§6.2); neighbouring words in one charset are joined as bytes before decoding, because
    clients split a multi-byte character across two words; each charset falls back like a body
    (unknown or lying charset → UTF-8 → Windows-1252); damaged base64 decodes what it can."""
    pieces: list[str] = []
    pending = b""
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            pieces.append(decode_bytes(pending, pending_charset)[0])
        pending, pending_charset = b"", None

    for match in _ENCODED_WORD_PARTS.finditer(value):
        between = value[position : match.start()]
        position = match.end()
        charset = match.group(1).split("*", 1)[0]
        if pending_charset is None or between.strip():
            flush()
            pieces.append(between)
        elif charset.lower() != pending_charset.lower():
            flush()
        pending += _word_bytes(match.group(2).lower(), match.group(3))
        pending_charset = charset
    flush()
    pieces.append(value[position:])
    return "".join(pieces)


def _word_bytes(encoding: str, text: str) -> bytes:
    raw = text.encode("ascii", "replace")
    if encoding == "q":
        return binascii.a2b_qp(raw, header=True)
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return b""


def message_ids(raw: str) -> list[str]:
    """The ids in a References/In-Reply-To value, without angle brackets, in order, each once.
    Values without brackets (some clients) are split on white space. Ids longer than `MAX_ID`
    characters are left out."""
    value = one_line(repair_8bit(raw))
    ids = [one_line(found) for found in _ANGLE_ID.findall(value)]
    if not ids:
        words = value.split()
        ids = [word for word in words if "@" in word] or words[:1]
    seen: set[str] = set()
    result = []
    for found in ids:
        found = found.strip("<> ").replace(" ", "")
        if found and len(found) <= MAX_ID and found not in seen:
            seen.add(found)
            result.append(found)
    return result


def first_message_id(raw: str | None) -> str | None:
    """The first id of a Message-ID/In-Reply-To value, or None."""
    if raw is None:
        return None
    ids = message_ids(raw)
    return ids[0] if ids else None


def parse_date(raw: str | None) -> datetime | None:
    """A timezone-aware datetime; "-0000" (zone unknown, RFC 5322 §3.3) is taken as UTC."""
    if not raw:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(one_line(repair_8bit(raw[:_MAX_DATE])))
    except Exception:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.utcoffset()
        parsed.isoformat()
    except Exception:
        return None
    return parsed


@dataclass(frozen=True)
class AuthResults:
    """The verdicts of one Authentication-Results header (RFC 8601): each is the result keyword
    (``pass``, ``fail``, ``softfail``, ``none``, …) or None when the method is not reported.
    ``authserv_id`` names who checked (Microsoft 365 leaves it out: None); ``dmarc_domain`` is
    the From domain the DMARC check judged (``header.from``, lower-case), when given."""

    authserv_id: str | None = None
    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    dmarc_domain: str | None = None

    @property
    def summary(self) -> str:
        """ "spf=pass dkim=pass dmarc=fail" — the methods reported, in that order; "" if none."""
        verdicts = (("spf", self.spf), ("dkim", self.dkim), ("dmarc", self.dmarc))
        return " ".join(f"{method}={result}" for method, result in verdicts if result)


_COMMENT = re.compile(r"\([^()]*\)")
_METHOD = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:/\s*[0-9]+\s*)?=\s*([A-Za-z0-9_.-]+)")
_HEADER_FROM = re.compile(r"(?:^|\s)header\.from\s*=\s*([^\s;]{1,255})", re.IGNORECASE)


def parse_auth_results(raw: str) -> AuthResults:
    """Read spf, dkim and dmarc results from one Authentication-Results value. For DKIM, any
    passing signature makes ``pass``."""
    value = one_line(repair_8bit(raw))
    for _ in range(8):  # comments nest; strip innermost first, a bounded number of times
        stripped = _COMMENT.sub(" ", value)
        if stripped == value:
            break
        value = stripped
    pieces = [piece.strip() for piece in value.split(";")]
    authserv_id: str | None = None
    if pieces and "=" not in pieces[0]:
        authserv_id = pieces[0].split()[0] if pieces[0].split() else None
        pieces = pieces[1:]
    results: dict[str, list[str]] = {}
    dmarc_domain: str | None = None
    for piece in pieces:
        match = _METHOD.match(piece)
        if match:
            method = match.group(1).lower()
            results.setdefault(method, []).append(match.group(2).lower())
            checked = _HEADER_FROM.search(piece) if method == "dmarc" else None
            if checked and dmarc_domain is None:
                dmarc_domain = checked.group(1).rpartition("@")[2].lower().rstrip(".")
    dkim = results.get("dkim")
    return AuthResults(
        authserv_id=authserv_id,
        spf=results["spf"][0] if "spf" in results else None,
        dkim=("pass" if "pass" in dkim else dkim[0]) if dkim else None,
        dmarc=results["dmarc"][0] if "dmarc" in results else None,
        dmarc_domain=dmarc_domain or None,
    )

"""MIME header values with parameters — Content-Type, Content-Disposition — read in linear time.

RFC 2045 §5.1 (`type/subtype *(";" attribute "=" value)`, values a token or a quoted string,
comments allowed) and RFC 2231 (`name*=charset'lang'%XX`, continuations `name*0*=`, `name*1=`).

The standard library's parser for these headers costs time that grows with the square of the
value (64 KB of semicolons: 25 s; a hundred parts with 10 KB each: 56 s) and recurses once per
nested comment, so a part's header never reaches it: `canonical_*` rebuild a short value from
what is read here, and that is what the stdlib sees. What a sender wrote past the limits below
is left out, and said so in `notes`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote_to_bytes

from mailgate.inbound.charsets import decode_bytes

__all__ = [
    "MAX_PARAMETERS",
    "MAX_PARAMETER_VALUE",
    "MAX_VALUE",
    "Parameters",
    "canonical_content_type",
    "canonical_disposition",
    "canonical_transfer_encoding",
    "parse_parameters",
]

# A header value is read up to this many characters: a 255-character file name in UTF-8,
# percent-encoded over RFC 2231 continuations, takes about 2,500.
MAX_VALUE = 16 * 1024
# Parameters (RFC 2231 sections counted one by one) read from one header: clients write a few;
# a 255-character file name in CJK, split into 70-character continuations, takes 33.
MAX_PARAMETERS = 64
# A decoded value longer than this is cut: file names end at 255 characters, a boundary at 70
# (RFC 2046 §5.1.1), a charset name at 40.
MAX_PARAMETER_VALUE = 1024
# Tokens (quoted strings, runs of text, ";", "(" and ")") looked at per value: with the
# parameter cap this bounds the work per header whatever the sender wrote.
_MAX_TOKENS = 4 * MAX_PARAMETERS
_MEMO_MAX_VALUE = 2048

# A quoted string written as an unrolled loop (runs of plain characters between escapes):
# one step per run, not per character.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[;()]|[^";()]+', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)
_SECTION = re.compile(r"^([^*]+)(?:\*([0-9]{1,3}))?(\*)?$")
_TOKEN_TEXT = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_MEDIA_TYPE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]{1,127}/[!#$%&'*+\-.^_`|~0-9a-z]{1,127}$")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Parameters:
    """One header value read: `kind` is the part before the first ";" (a media type or a
    disposition), lower-case, white space removed; `params` maps lower-case names to decoded
    values (RFC 2231 joined and decoded; RFC 2047 words inside quotes are left for the caller,
    as they are no part of MIME's syntax); `notes` say what was left out."""

    kind: str
    params: Mapping[str, str]
    notes: tuple[str, ...] = ()


def parse_parameters(value: str) -> Parameters:
    """Read `value` (a Content-Type or Content-Disposition value, unfolded) in time linear in
    its length and never more than `MAX_VALUE` characters of it. Never raises."""
    # A part's header is read several times over (the stdlib asks for its type and boundary,
    # then the walk for its parameters): each value is read once.
    if len(value) <= _MEMO_MAX_VALUE:
        return _parse_short(value)
    return _parse_long(value[: MAX_VALUE + 1])  # one more: the cut is still seen


@functools.lru_cache(maxsize=2048)
def _parse_short(value: str) -> Parameters:
    return _parse(value)


@functools.lru_cache(maxsize=32)  # the values of the last few parts: at most half a MB
def _parse_long(value: str) -> Parameters:
    return _parse(value)


def _parse(value: str) -> Parameters:
    notes: list[str] = []
    if len(value) > MAX_VALUE:
        notes.append(f"value longer than {MAX_VALUE} characters; the rest was ignored")
        value = value[:MAX_VALUE]
    segments = _segments(value, notes)
    kind = "".join(segments[0]).lower().replace(" ", "").replace("\t", "") if segments else ""
    raw: dict[str, list[tuple[int, bool, str]]] = {}
    for pieces in segments[1 : MAX_PARAMETERS + 1]:
        _add_section(pieces, raw)
    if len(segments) > MAX_PARAMETERS + 1:
        notes.append(f"more than {MAX_PARAMETERS} parameters; the rest were ignored")
    params: dict[str, str] = {}
    for name, sections in raw.items():
        decoded = _join_sections(sections)
        if len(decoded) > MAX_PARAMETER_VALUE:
            notes.append(f"parameter {name!r} longer than {MAX_PARAMETER_VALUE} characters; cut")
            decoded = decoded[:MAX_PARAMETER_VALUE]
        params[name] = decoded
    return Parameters(kind[:255], MappingProxyType(params), tuple(notes))


def _segments(value: str, notes: list[str]) -> list[list[str]]:
    """The value split on ";" outside quoted strings and comments; each segment is its pieces
    of text, with quoted strings kept in their quotes (so `_add_section` knows them)."""
    segments: list[list[str]] = [[]]
    depth = 0
    for count, match in enumerate(_TOKENS.finditer(value)):
        if count >= _MAX_TOKENS:
            notes.append("too many parameters or comments; the rest was ignored")
            break
        token = match.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth = max(depth - 1, 0)
        elif depth:
            continue  # comment text (RFC 822 comments are allowed in MIME headers)
        elif token == ";":
            if len(segments) > MAX_PARAMETERS + 1:
                break
            segments.append([])
        else:
            segments[-1].append(token)
    return segments


def _add_section(pieces: list[str], raw: dict[str, list[tuple[int, bool, str]]]) -> None:
    """One `attribute=value` segment into `raw[name]` as (section number, encoded, text)."""
    if not pieces or pieces[0].startswith('"'):
        return  # a quoted string before "=": not a parameter
    if "=" in pieces[0]:  # the common case: no comment between the name and its "="
        attribute, value = pieces[0], pieces[1:]
    else:
        attribute, value = _attribute_around_comments(pieces)
    name_part, equals, rest = attribute.partition("=")
    section = _SECTION.match(name_part.strip().lower()) if equals else None
    if section is None:
        return  # junk between semicolons
    name, number, star = section.group(1).strip(), section.group(2), section.group(3)
    text = "".join(_unquote(piece) for piece in [rest, *value])
    raw.setdefault(name, []).append((int(number) if number else -1, bool(star), text))


def _attribute_around_comments(pieces: list[str]) -> tuple[str, list[str]]:
    """The text up to and including the piece with "=", and the pieces after it."""
    for index, piece in enumerate(pieces):
        if piece.startswith('"'):
            return "", []
        if "=" in piece:
            return "".join(pieces[: index + 1]), pieces[index + 1 :]
    return "", []


def _unquote(piece: str) -> str:
    """A quoted string's content, escapes undone; other text without its outer white space."""
    if not piece.startswith('"'):
        return piece.strip()
    inner = piece[1:-1] if len(piece) > 1 and piece.endswith('"') else piece[1:]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _join_sections(sections: list[tuple[int, bool, str]]) -> str:
    """RFC 2231 §3-4: `name*` or numbered sections joined in order, percent-encoded ones read in
    the charset the first section names. The extended form wins over a plain `name=` (Outlook
    writes both); a plain duplicate keeps the first value (as `get_param` reads it)."""
    extended = [section for section in sections if section[0] >= 0 or section[1]]
    if not extended:
        return sections[0][2]
    extended.sort(key=lambda section: section[0])
    charset: str | None = None
    data = bytearray()
    for index, (_, encoded, text) in enumerate(extended):
        if encoded and index == 0 and text.count("'") >= 2:
            charset, _, text = text.split("'", 2)  # charset'language'text
        raw = text.encode("utf-8", "surrogateescape")
        data += unquote_to_bytes(raw) if encoded else raw
    return decode_bytes(bytes(data), charset or "utf-8")[0]


def canonical_content_type(value: str) -> str:
    """The short Content-Type the stdlib may parse: the media type (RFC 2045 §5.2: text/plain
    when it is not one) with only the parameters the stdlib itself reads — the boundary to split
    a multipart, the charset when it reads a payload."""
    parsed = parse_parameters(value)
    kind = parsed.kind if _MEDIA_TYPE.match(parsed.kind) else "text/plain"
    extra = "".join(
        f'; {name}="{_quoted(parsed.params[name])}"'
        for name in ("boundary", "charset")
        if name in parsed.params
    )
    return kind + extra


def canonical_disposition(value: str) -> str:
    """The disposition type alone ("inline", "attachment", …), or "" when there is none."""
    kind = parse_parameters(value).kind
    return kind if _TOKEN_TEXT.match(kind) else ""


def canonical_transfer_encoding(value: str) -> str:
    """The encoding token of a Content-Transfer-Encoding (RFC 2045 §6.1), lower-case, comments
    and anything after the first word dropped; "" when there is none."""
    words = "".join(_segments(value[:256], [])[0]).split()
    word = words[0].lower()[:64] if words else ""
    return word if _TOKEN_TEXT.match(word) else ""


def _quoted(text: str) -> str:
    return _CONTROLS.sub("", text).replace("\\", "\\\\").replace('"', '\\"')

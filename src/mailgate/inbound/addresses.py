"""Address headers (From, To, Cc) read as RFC 5322 §3.4 says, in time linear in the header.

The structure is parsed first, on the raw text: angle brackets, groups, quoted strings,
comments, domain literals, and the obsolete forms of §4.4 (a route `<@a,@b:user@host>`, white
space or comments between the words of an address, a trailing dot after the domain). Only then
is the display name decoded from RFC 2047 encoded words: what a word decodes to can never become
an address, and an encoded word is never part of one (RFC 2047 §5).

An address is usable when it has a local part (a dot-atom or a quoted string) and a domain (a
dotted name or an address literal); it is given lower-case, a quoted local part only when it
needs the quotes. `From: root` and `From: <>` give no usable address, nor does one that mail
servers would read as another (an invisible character, a fullwidth letter or an ideographic full
stop in the domain; an invisible character in the local part).

The standard library's parser is not used: its cost grows with the square of the header
(a 128 KB `From` took 35 s) and it reads addresses out of display names.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, replace

from mailgate.inbound.headers import decode_text, one_line, repair_8bit

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ENTRY",
    "MAX_HEADER",
    "AddressList",
    "Mailbox",
    "author",
    "parse_address_list",
    "recipients",
]

# Entries read from one header; a real Cc rarely holds a hundred.
MAX_ADDRESSES = 1000
# Characters of one header read: real Cc lists run to a few tens of KB. Longer is cut after a
# comma, so no address is ever read from the first half of a longer one.
MAX_HEADER = 64 * 1024
# Characters of one entry (display name and address): RFC 5321 §4.5.3.1 allows 256 for the path
# and RFC 5322 §2.1.1 998 for a line; longer is no mailbox anyone wrote.
MAX_ENTRY = 2048

_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n]+)
      | (?P<quoted>"[^"\\]*(?:\\.[^"\\]*)*"?)
      | (?P<literal>\[[^\[\]\\]*(?:\\.[^\[\]\\]*)*\]?)
      | (?P<word>=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)
      | (?P<comment>\()
      | (?P<special>[<>@,;:.)])
      | (?P<atom>[^\s"\[\]()<>@,;:.]+)
      | (?P<other>.)""",
    re.X | re.S,
)
_COMMENT_PARTS = re.compile(r"\\.|[()]", re.S)
_ROUTE_COMMA = re.compile(r"[ \t\r\n]*@")
_ESCAPE = re.compile(r"\\(.)", re.S)
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?")
# RFC 5322 §3.2.3 atext, and any non-ASCII character (RFC 6532 §3.2).
_ATEXT_CHARACTERS = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_ATEXT = re.compile(rf"^[{_ATEXT_CHARACTERS}]+$")
_DOT_ATOM = re.compile(rf"^[{_ATEXT_CHARACTERS}]+(?:\.[{_ATEXT_CHARACTERS}]+)*$")
_LABEL = re.compile(r"^[a-z0-9_\u0080-\U0010ffff][a-z0-9_\-\u0080-\U0010ffff]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MEMO_MAX_VALUE = 1024  # with 4096 entries: a few MB at most
_NOT_SIMPLE = re.compile(r'["()\\:;\[\]]|=\?|[\x00-\x1f\x7f]')
_SIMPLE_MAILBOX = re.compile(
    r"^\s*(?:([^<>@,]*?)\s*<([^<>@\s,]+@[^<>@\s,]+)>|([^<>@\s,]+@[^<>@\s,]+))\s*$"
)
_SIMPLE_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
    r"@[A-Za-z0-9_](?:[A-Za-z0-9_\-]*)(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)+\.?$"
)
_PHRASE_KINDS = frozenset({"atom", "quoted", "word", "."})
_TWO_ADDRESSES = "a mailbox with two addresses in angle brackets was not read"


@dataclass(frozen=True)
class Mailbox:
    """One mailbox of an address header: the decoded display name (None when there is none),
    the lower-case address ("" when there is no usable one), and `spec`, the text that stood
    where the address belongs ("root", "") — for notes, never for sending."""

    name: str | None
    address: str
    spec: str = ""


@dataclass(frozen=True)
class AddressList:
    """An address header read: its mailboxes in order (members of groups included), how many
    groups it holds, and what was left out."""

    mailboxes: tuple[Mailbox, ...] = ()
    groups: int = 0
    too_long: int = 0  # entries skipped for their length, one more when the header was cut
    notes: tuple[str, ...] = ()

    @property
    def usable(self) -> tuple[Mailbox, ...]:
        """The mailboxes with a usable address."""
        return tuple(mailbox for mailbox in self.mailboxes if mailbox.address)


@dataclass(frozen=True)
class _Token:
    kind: str  # atom, quoted, word, literal, other, or the special character itself
    text: str
    spaced: bool  # white space or a comment before it


@dataclass
class _Entry:
    tokens: list[_Token]
    start: int
    too_long: bool = False
    phrase: bool = True  # only words and dots so far: a ":" now opens a group


def parse_address_list(raw: str) -> AddressList:
    """Every mailbox of an address header value (unfolded or not). Never raises. Reads at most
    `MAX_HEADER` characters and `MAX_ADDRESSES` entries; skips entries longer than
    `MAX_ENTRY` characters."""
    if len(raw) <= _MEMO_MAX_VALUE:  # the same To and From arrive on message after message
        return _parse_memo(raw)
    return _parse(raw)


@functools.lru_cache(maxsize=4096)
def _parse_memo(raw: str) -> AddressList:
    return _parse(raw)


def _parse(raw: str) -> AddressList:
    value = repair_8bit(raw)
    notes: list[str] = []
    cut = len(value) > MAX_HEADER
    if cut:
        # Cut after a comma: a token cut in two could read as another address; a comma inside
        # quotes or a comment leaves that quote or comment open, which swallows the rest.
        value = value[: value.rfind(",", 0, MAX_HEADER) + 1]
        notes.append(f"longer than {MAX_HEADER} characters; the addresses after were ignored")
    simple = _simple(value)
    parsed = AddressList(simple, notes=tuple(notes)) if simple is not None else _full(value, notes)
    return replace(parsed, too_long=parsed.too_long + 1) if cut else parsed


def _full(value: str, notes: list[str]) -> AddressList:
    """The whole grammar: entries split by `_split`, each read by `_mailbox`."""
    entries, groups = _split(value, notes)
    mailboxes: list[Mailbox] = []
    too_long = 0
    for entry in entries:
        if entry.too_long:
            too_long += 1
            continue
        mailbox = _mailbox(entry.tokens, notes)
        if mailbox is not None:
            mailboxes.append(mailbox)
    if too_long:
        notes.append(f"{too_long} address(es) longer than {MAX_ENTRY} characters skipped")
    return AddressList(tuple(mailboxes), groups, too_long, tuple(dict.fromkeys(notes)))


def _simple(value: str) -> tuple[Mailbox, ...] | None:
    """The common case read with one regular expression per entry: plain ASCII `Name <a@b.c>`
    or `a@b.c` entries. None when anything is unusual (quotes, comments, groups, encoded words,
    an address that is not plainly valid): then the full reading decides."""
    if not value.isascii() or _NOT_SIMPLE.search(value):
        return None
    found: list[Mailbox] = []
    for entry in value.split(","):
        if not entry.strip():
            continue
        match = _SIMPLE_MAILBOX.match(entry)
        if match is None or len(found) >= MAX_ADDRESSES or len(entry) > MAX_ENTRY:
            return None
        name, address = match.group(1), match.group(2) or match.group(3)
        if not _SIMPLE_ADDRESS.match(address):
            return None
        found.append(
            Mailbox(one_line(name) or None if name else None, address.lower().rstrip("."), address)
        )
    return tuple(found)


def recipients(values: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The usable addresses of several header values (every To, or every Cc), lower-case, each
    once, in order; and the notes on what was left out."""
    found: dict[str, None] = {}
    notes: list[str] = []
    for value in values:
        parsed = parse_address_list(value)
        found.update(dict.fromkeys(mailbox.address for mailbox in parsed.usable))
        notes.extend(parsed.notes)
    return tuple(found), tuple(dict.fromkeys(notes))


def author(values: list[str]) -> tuple[Mailbox, str | None, tuple[str, ...]]:
    """The From mailbox (RFC 5322 §3.6.2: the author), or why there is none, and notes.

    The first From header is read. Its single mailbox with a usable address is the author.
    There is none when the header holds a group (From must hold mailboxes; a group in it is how
    a name gets passed off as an address), holds two usable addresses (which one wrote is not
    known), or holds no address with a domain; nor when another From header names anything
    else (RFC 5322 §3.6 allows one: which one the receiving provider's DMARC check judged is not
    known, RFC 7489 §6.6.1). The Sender header is never taken instead: it names the agent that
    sent, not the author.
    """
    if not values:
        return Mailbox(None, ""), "the message has no From header", ()
    parsed = parse_address_list(values[0])
    notes = parsed.notes + (
        (f"{len(values)} From headers; the first was read",) if len(values) > 1 else ()
    )
    usable = parsed.usable
    if len(usable) == 1 and not parsed.groups:
        if any(_names_another(value, usable[0].address) for value in values[1:]):
            problem = (
                f"the message has {len(values)} From headers with different addresses; "
                "which one wrote is not known"
            )
            return Mailbox(usable[0].name, "", usable[0].spec), problem, notes
        return usable[0], None, notes
    first = parsed.mailboxes[0] if parsed.mailboxes else Mailbox(None, "")
    nobody = Mailbox(None if parsed.groups else first.name, "", first.spec)
    return nobody, _author_problem(parsed), notes


def _names_another(value: str, address: str) -> bool:
    """Whether a further From value holds a group or a mailbox other than `address`."""
    parsed = parse_address_list(value)
    return bool(parsed.groups) or any(mailbox.address != address for mailbox in parsed.mailboxes)


def _author_problem(parsed: AddressList) -> str:
    if parsed.groups:
        return "the From header holds a group, not a mailbox"
    if len(parsed.usable) > 1 or _TWO_ADDRESSES in parsed.notes:
        count = max(len(parsed.usable), 2)
        return f"the From header holds {count} addresses; which one wrote is not known"
    if parsed.too_long:
        return "the From header is too long to be read"
    return "the From header has no address with a domain"


def _split(value: str, notes: list[str]) -> tuple[list[_Entry], int]:
    """Tokens grouped into entries: split on "," (and on ";", which ends a group, and which
    some clients write between addresses), never inside angle brackets except between the
    domains of a route; a phrase followed by ":" opens a group (RFC 5322 §3.4)."""
    entries: list[_Entry] = []
    groups = 0
    entry = _Entry([], 0)
    in_angle = False
    spaced = False
    position = 0
    while position < len(value):
        if len(entries) >= MAX_ADDRESSES:
            notes.append(f"more than {MAX_ADDRESSES} addresses; the rest were ignored")
            return entries, groups
        match = _TOKEN.match(value, position)
        if match is None:  # unreachable: `other` matches any character
            break
        kind = match.lastgroup or "other"
        position = match.end()
        if kind in ("space", "comment"):
            position = _skip_comment(value, position) if kind == "comment" else position
            spaced = True
            continue
        text = match.group()
        kind = text if kind == "special" else kind
        if (kind == "," and not (in_angle and _ROUTE_COMMA.match(value, position))) or (
            kind == ";" and not in_angle
        ):
            entries.append(entry)
            entry = _Entry([], position)
        elif kind == ":" and not in_angle and entry.phrase:
            groups += 1
            entry = _Entry([], position)
        else:
            in_angle = (in_angle or kind == "<") and kind != ">"
            if position - entry.start > MAX_ENTRY:
                entry.too_long, entry.tokens = True, []
            if not entry.too_long:
                entry.tokens.append(_Token(kind, text, spaced))
            entry.phrase = entry.phrase and kind in _PHRASE_KINDS
        spaced = False
    entries.append(entry)
    return entries, groups


def _skip_comment(value: str, position: int) -> int:
    """The position after the comment whose "(" ends before `position` (comments nest, RFC 5322
    §3.2.2); the end of the value when it is never closed."""
    depth = 1
    for match in _COMMENT_PARTS.finditer(value, position):
        if match.group() == "(":
            depth += 1
        elif match.group() == ")":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(value)


def _mailbox(tokens: list[_Token], notes: list[str]) -> Mailbox | None:
    """An entry as a mailbox: `phrase <addr-spec>` or a bare addr-spec. None when empty."""
    if not tokens:
        return None
    opens = [index for index, token in enumerate(tokens) if token.kind == "<"]
    if not opens:
        address, spec = _addr_spec(tokens)
        return Mailbox(None, address, spec)  # a trailing comment is no name (RFC 5322 §3.4)
    name = _phrase_text(tokens[: opens[0]])
    if len(opens) > 1:
        notes.append(_TWO_ADDRESSES)
        return Mailbox(name, "", "")
    inside = tokens[opens[0] + 1 :]
    close = next((index for index, token in enumerate(inside) if token.kind == ">"), len(inside))
    inside = inside[:close]
    if inside and inside[0].kind == "@":
        # obs-route (RFC 5322 §4.4): "@a,@b:" before the address names relays; skip it.
        colons = [index for index, token in enumerate(inside) if token.kind == ":"]
        inside = inside[colons[-1] + 1 :] if colons else []
    address, spec = _addr_spec(inside)
    return Mailbox(name, address, spec)


def _addr_spec(tokens: list[_Token]) -> tuple[str, str]:
    """(usable lower-case address or "", the text as written)."""
    spec = "".join(_plain(token) for token in tokens).strip()
    ats = [index for index, token in enumerate(tokens) if token.kind == "@"]
    if len(ats) != 1:
        return "", spec
    local = _local_part(tokens[: ats[0]])
    domain = _domain(tokens[ats[0] + 1 :])
    if not local or not domain:
        return "", spec
    return unicodedata.normalize("NFC", f"{local}@{domain}".lower()), spec


def _local_part(tokens: list[_Token]) -> str:
    """word *("." word), white space and comments between allowed (obs-local-part); the words
    joined with "." (RFC 5322 §3.4.1), quoted only when they need it. "" when invalid."""
    words: list[str] = []
    quoted = False
    for index, token in enumerate(tokens):
        if index % 2 == 1:
            if token.kind != ".":
                return ""
            continue
        if token.kind == "quoted":
            content = _unquote(token.text)
            if _CONTROL.search(content) or not token.text.endswith('"') or len(token.text) < 2:
                return ""
            words.append(content)
            quoted = True
        elif token.kind == "atom" and _ATEXT.match(token.text):
            words.append(token.text)
        else:
            return ""
    if len(tokens) % 2 == 0:  # empty, or a dot at the end
        return ""
    local = ".".join(words)
    if _ENCODED_WORD.search(local) or not local or _invisible(local):
        return ""
    if quoted and not _DOT_ATOM.match(local):
        return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return local


def _domain(tokens: list[_Token]) -> str:
    """A dotted name (at least two labels; a trailing dot, the DNS root, dropped) or an address
    literal in brackets. "" when neither."""
    if len(tokens) == 1 and tokens[0].kind == "literal":
        literal = tokens[0].text
        if literal.endswith("]") and len(literal) > 2 and not _CONTROL.search(literal):
            return literal.replace(" ", "")
        return ""
    if tokens and tokens[-1].kind == ".":
        tokens = tokens[:-1]
    labels: list[str] = []
    for index, token in enumerate(tokens):
        if index % 2 == 1:
            if token.kind != ".":
                return ""
        elif token.kind == "atom" and _LABEL.match(token.text.lower()) and _plain_label(token.text):
            labels.append(token.text)
        else:
            return ""
    if len(tokens) % 2 == 0 or len(labels) < 2:
        return ""
    return ".".join(labels)


def _invisible(text: str) -> bool:
    """Whether `text` holds a character that shows as nothing or as something else: a format
    character (zero-width space, soft hyphen, bidirectional override), a separator, a
    private-use or unassigned one. Such an address only looks like another."""
    return not text.isascii() and any(
        unicodedata.category(character)[0] in "CZ" for character in text if not character.isascii()
    )


def _plain_label(label: str) -> bool:
    """Whether a domain label is one that mail servers look up as written. They apply UTS #46
    to an internationalised domain first, which drops invisible characters, folds compatibility
    forms (fullwidth letters, circled digits) and reads the ideographic full stops as dots: a
    label it would change is delivered to another domain than the one it spells, and no DMARC
    record covers what it spells. So: letters, marks and digits only, in their NFKC form."""
    if label.isascii():
        return True
    composed = unicodedata.normalize("NFC", label)
    return unicodedata.normalize("NFKC", composed) == composed and all(
        character.isascii() or unicodedata.category(character)[0] in "LMN" for character in composed
    )


def _phrase_text(tokens: list[_Token]) -> str | None:
    """The display name: its words as written (quoted strings without their quotes), one space
    where the sender put white space or a comment, then RFC 2047 words decoded — encoded words
    inside quotes included, as every mail client writes and reads them there."""
    pieces: list[str] = []
    for token in tokens:
        if token.spaced and pieces:
            pieces.append(" ")
        pieces.append(_unquote(token.text) if token.kind == "quoted" else token.text)
    name = decode_text("".join(pieces))
    return name or None


def _unquote(text: str) -> str:
    inner = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _plain(token: _Token) -> str:
    return (" " if token.spaced else "") + token.text

"""The new part of a reply: a text body without the quoted history, separators and signature.

Two sources of rules, applied to a normalised copy of the lines (so the original text, with its
indentation, is what is kept):

- mail-parser-reply's multi-language header patterns: "On … wrote:" / "Am … schrieb …:" /
  "Le … a écrit :" and the Outlook "From:/Sent:/To:/Subject:" block in a dozen languages, and
  "-----Original Message-----". Its own `parse_reply` is not used: it strips every line's
  indentation and its signature rules cut everything after a line starting "Thanks," — both
  lose what a customer wrote.
- our own: attributions that Gmail wraps over two lines, "Original Message"/"Forwarded message"
  separators in other languages, Outlook's line of underscores before the header block, `>`
  quote blocks at the end, the RFC 3676 signature separator "-- ", and "Sent from my iPhone".

Pure functions; no I/O.
"""

from __future__ import annotations

import re

from mailparser_reply.parser import EmailMessage  # type: ignore[import-untyped, unused-ignore]

__all__ = ["split_reply", "strip_quoted"]

# Polish is left out on purpose: its Outlook pattern needs a single "Do:"/"Data:" line, which
# cuts ordinary English text ("Data: 42 rows").
_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "da", "cs", "ja", "ko", "zh"]
_LIBRARY_HEADERS: re.Pattern[str] = EmailMessage(text="", languages=list(_LANGUAGES)).HEADER_REGEX

_OPENERS = r"(?:On|Le|Am|El|Il|Op|Den|Dne|Em|W dniu|På)"
_VERBS = (
    r"(?:wrote|writes|a écrit|schrieb|escribió|ha scritto|schreef|skrev|napsal\(a\)|"
    r"escreveu|napisał\(a\)|kirjoitti)"
)
# "On Mon, Jan 6, 2025 at 10:15 AM Support <support@example.com> wrote:" — also when a client
# wrapped it over two lines (Gmail's text/plain wraps at 76 columns).
_ATTRIBUTION = re.compile(
    rf"^(?:> ?)*{_OPENERS}\s.{{0,300}}?\s{_VERBS}(?:\s.{{0,160}})?\s*:$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(rf"^(?:> ?)*{_OPENERS}\s", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^(?:> ?)*-{2,}\s*(?:original message|ursprüngliche nachricht|originalnachricht|"
    r"message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|"
    r"originalmeddelande|oprindelig meddelelse|původní zpráva|mensagem original|"
    r"forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|"
    r"messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada)\s*-{2,}$"
    r"|^(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"début du message réexpédié|inicio del mensaje reenviado)\s*:$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{20,}$")
_HEADER_LINE = re.compile(
    r"^\*?(?:From|Von|De|Da|Van|Från|Fra|Od|Date|Sent|Gesendet|Envoyé)\s?\*?:", re.IGNORECASE
)
_SIGNATURE = ("-- ", "--")
_MOBILE = re.compile(
    r"^(?:sent from my\b|sent from (?:mail|outlook|yahoo)\b|get outlook for\b|"
    r"von meinem .{1,40} gesendet$|gesendet von (?:meinem|outlook|mail)\b|"
    r"envoyé de mon\b|envoyé depuis\b|enviado desde mi\b|inviato da\b|verzonden vanaf mijn\b)",
    re.IGNORECASE,
)
_ATTRIBUTION_TAIL = re.compile(rf"(?:\b{_VERBS}|@)", re.IGNORECASE)
_RULE = re.compile(r"^[-_=*~]{2,}$")
_INVISIBLE = str.maketrans(
    {"\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u200b": None, "\ufeff": None}
)
_RUNS_OF_SPACE = re.compile(r"[ \t]+")
# Bounds on the work for one body: an attribution line is never longer than this, and history
# that starts later than this many lines into a message is left in place.
_MAX_LINE = 300
_MAX_LINES = 5000
_MAX_CANDIDATES = 200


def strip_quoted(text: str) -> str:
    """`text` without quoted history, separators and signature; "" when nothing new is left."""
    return split_reply(text)[0]


def split_reply(text: str) -> tuple[str, bool]:
    """(the new part of `text`, whether quoted history was found and removed)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    probe = [_normal(line) for line in lines]
    cut = _history_start(probe)
    kept = lines
    if cut is not None:
        kept = lines[: cut.line]
        if not any(line.strip() for line in kept):
            kept = _bottom_posted(lines, probe, cut.line + cut.length)
    kept = _cut_signature(kept)
    trimmed = _trim_tail(kept)
    quoted = cut is not None or any(line.lstrip().startswith(">") for line in kept[len(trimmed) :])
    return "\n".join(line.rstrip() for line in trimmed).strip("\n"), quoted


class _Cut:
    def __init__(self, line: int, length: int) -> None:
        self.line = line  # first line of history
        self.length = length  # how many lines the marker spans


def _normal(line: str) -> str:
    line = _RUNS_OF_SPACE.sub(" ", line.translate(_INVISIBLE)).strip()
    return line[:_MAX_LINE]


def _history_start(probe: list[str]) -> _Cut | None:
    found: list[_Cut] = []
    joined = "\n".join(_candidates(probe))
    match = _LIBRARY_HEADERS.search(joined)
    if match is not None:
        start = match.start()
        while start < len(joined) and joined[start] == "\n":
            start += 1
        found.append(_Cut(joined.count("\n", 0, start), 1))
    limit = min(found[0].line if found else len(probe), _MAX_LINES)
    for index in range(limit):
        cut = _own_marker(probe, index)
        if cut is not None:
            found.append(cut)
            break
    return min(found, key=lambda cut: cut.line) if found else None


def _candidates(probe: list[str]) -> list[str]:
    """The lines a header pattern could match, others blanked so line numbers stay. Every
    pattern ends in a colon at the end of its line ("… wrote:", possibly wrapped from the line
    before) or has one right after a field name ("From:", "De :"); prose is skipped, and at most
    `_MAX_CANDIDATES` lines are tried — the library's patterns cost time at every character
    they run on, quadratic on long lines that start like an attribution."""
    lines = probe[:_MAX_LINES]
    ends = [line.endswith((":", "：")) for line in lines]
    kept: list[str] = []
    budget = _MAX_CANDIDATES
    for index, line in enumerate(lines):
        candidate = (
            ends[index]
            or (index + 1 < len(lines) and ends[index + 1])
            or ":" in line[:40]
            or "：" in line[:40]
        )
        if candidate and budget > 0:
            budget -= 1
            kept.append(line)
        else:
            kept.append("")
    return kept


def _own_marker(probe: list[str], index: int) -> _Cut | None:
    line = probe[index]
    if not line:
        return None
    if _SEPARATOR.match(line):
        return _Cut(index, 1)
    if _ATTRIBUTION_START.match(line):
        if _ATTRIBUTION.match(line):
            return _Cut(index, 1)
        if index + 1 < len(probe) and _ATTRIBUTION.match(f"{line} {probe[index + 1]}"):
            return _Cut(index, 2)
    if _UNDERSCORES.match(line):
        following = [p for p in probe[index + 1 : index + 4] if p]
        if following and _HEADER_LINE.match(following[0]):
            return _Cut(index, 1)
    return None


def _bottom_posted(lines: list[str], probe: list[str], after: int) -> list[str]:
    """A reply written below a `>`-quoted message: the lines after the quote block."""
    index = after
    while index < len(probe) and not probe[index]:
        index += 1
    if index >= len(probe) or not probe[index].startswith(">"):
        return []
    while index < len(probe) and (not probe[index] or probe[index].startswith(">")):
        index += 1
    return lines[index:]


def _cut_signature(lines: list[str]) -> list[str]:
    """RFC 3676 §4.3: the signature follows a line that is "-- "."""
    text_before = False
    for index, line in enumerate(lines):
        if text_before and line in _SIGNATURE:
            return lines[:index]
        text_before = text_before or bool(line.strip())
    return lines


def _trim_tail(lines: list[str]) -> list[str]:
    """Drop what clients add below the message: a `>` quote block and its attribution line,
    "Sent from my iPhone", separator rules, blank lines."""
    lines = list(lines)
    while lines:
        last = lines[-1].strip()
        if not last or _RULE.match(last) or _MOBILE.match(_normal(last)):
            lines.pop()
        elif last.startswith(">"):
            while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
                lines.pop()
            while lines and not lines[-1].strip():
                lines.pop()
            if lines and _is_attribution(_normal(lines[-1])):
                lines.pop()
        else:
            break
    return lines


def _is_attribution(line: str) -> bool:
    return line.endswith(":") and len(line) < 300 and bool(_ATTRIBUTION_TAIL.search(line))

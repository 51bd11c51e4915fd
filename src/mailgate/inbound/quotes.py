"""The new part of a reply: a text body without the quoted history, separators and signature.

The rules run on a normalised copy of the lines (so the original text, with its indentation, is
what is kept), and find where the history starts:

- attributions in the forms the clients of each language write ("On … wrote:", "Am … schrieb
  …:", "W dniu … napisał:", "pe 20. lokakuuta 2017 klo 17.50 … kirjoitti:", "tir. 18. apr. 2017
  kl. 13:09 skrev …:", the verb-less "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:"
  of Gmail in Russian, Yandex and mail.ru), also when wrapped over up to three lines, and
  Zoho's "---- On … wrote ----";
- Outlook-style header blocks in a dozen languages ("From: … / Sent: …", "De : … / Envoyé le :
  …", "От: … / Отправлено: …"), and Outlook's line of underscores before one;
- "Original Message" / "Forwarded message" separators in a dozen languages.

Below the new text go `>` quote blocks at the end, the RFC 3676 signature separator "-- ", and
"Sent from my iPhone". An attribution must show what attributions show — a time or an address —
so prose that merely starts with "On" or ends with "wrote:" ("On Monday we wrote the report:")
stays; one without an address must have the quote below it, so "On 5 May at 10:00 my colleague
wrote:" above the sender's own paragraphs stays; a wrapped one must hold an address, so "On 5 May
we met." is never joined with a next line "John then wrote:"; and a header block needs more than
a sender and a recipient — the time it was sent, or a subject — so an itinerary's "From: Berlin"
/ "To: Paris" / "Date: 5 May" stays. (mail-parser-reply's generic patterns cut all of these.)
What the sender wrote below a quote (a bottom-posted answer, answers between quoted lines) is
kept, under any text above the quote: losing their words is worse than leaving a quote in.

Pure functions; no I/O.
"""

from __future__ import annotations

import re

__all__ = ["attribution_above", "split_reply", "strip_quoted"]

# Words that open an attribution: "On …", "Le …", "Am …", "W dniu …", "In data …", "Pada …".
_OPENERS = r"(?:On|Le|Am|El|Il|Op|Den|Dne|Em|W\s+dniu|Dnia|In\s+data|På|Pada|Dana|В|Στις|Dňa|Ngày)"
# What the sender did, in each language: the verb ends the attribution ("… wrote:") or, in German
# and the Scandinavian languages, comes before the name ("… schrieb Support <…>:").
_VERBS = (
    r"(?:wrote|writes|has\s+written|a\s+écrit|schrieb|escribió|escribio|ha\s+scritto|scrisse|"
    r"schreef|skrev|kirjoitti|napsal(?:\(a\)|a)?|escreveu|napisał(?:\(a\)|a)?|nadesłał|"
    r"написал(?:\(а\)|а)?|пишет|menulis|yazdı|έγραψε|írta|napísal(?:\(a\))?|viết)"
)
_VERB_BEFORE_NAME = r"(?:schrieb|skrev)"
# Chinese and Korean glue the verb to what precedes it, and Gmail starts their attribution with
# the name: "Support <s@example.com> 于2025年1月6日周一 10:15写道：".
_GLUED_VERB_LAST = re.compile(r"(?:写道|寫道|님이\s?작성(?:하였습니다|했습니다)?)\s*[:：]$")
_QUOTE_MARKS = re.compile(r"^(?:>\s?)+")
_OPENS_WITH_WORD = re.compile(rf"^{_OPENERS}\s", re.IGNORECASE)
# A date or time first: "02.04.2012 14:20 …", "pe 20. lokakuuta …", "tir. 18. apr. …",
# "ср, 30 апр. …", "Wednesday, 17 November …", "11:00 AM, November 17, …": at most two words
# (weekday, month) before the first digit.
_OPENS_WITH_DATE = re.compile(r"^(?:[^\W\d]{1,12}\.?,?\s+){0,2}\d")
_VERB_LAST = re.compile(rf"(?:^|\s){_VERBS}\s*[:：]?$", re.IGNORECASE)
_VERB_THEN_NAME = re.compile(rf"\s{_VERB_BEFORE_NAME}\s[^:：]{{1,160}}[:：]$", re.IGNORECASE)
# No verb at all: "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" (Yandex, mail.ru,
# Russian Gmail). The address in angle brackets right before the colon is what marks it.
_ADDRESS_LAST = re.compile(r"<\s*[^<>\s@]+@[^<>\s]+\s*>\s*[:：]$")
_TIME = re.compile(r"\d{1,2}[:.]\d{2}")
_SENTENCE_END = re.compile(r"[.!?]$")
# Possessive runs (Python 3.11): a line of dashes is not re-read once per dash.
_SEPARATOR = re.compile(
    r"^(?:> ?)*+-{2,}+\s*+(?:original message|ursprüngliche nachricht|originalnachricht|"
    r"message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|"
    r"originalmeddelande|oprindelig meddelelse|oprindelig besked|opprinnelig melding|"
    r"alkuperäinen viesti|původní zpráva|pôvodná správa|mensagem original|"
    r"oryginalna wiadomość|wiadomość oryginalna|исходное сообщение|eredeti üzenet|"
    r"orijinal mesaj|forwarded message|weitergeleitete nachricht|message transféré|"
    r"mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|"
    r"videresendt meddelelse|videresendt melding|vidarebefordrat meddelande|"
    r"välitetty viesti|przekazana wiadomość|пересылаемое сообщение)\s*-{2,}$"
    r"|^(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"début du message réexpédié|inicio del mensaje reenviado)\s*:$",
    re.IGNORECASE,
)
# Outlook-style header blocks: the field names each language's clients write, by field.
_FIELD_NAMES = {
    "from": r"from|von|de|da|van|från|fra|od|от|lähettäjä|feladó|kimden|від|afzender|"
    r"remetente|mittente|expéditeur|发件人|寄件者|差出人|보낸\s?사람",
    "sent": r"sent|date|gesendet|datum|envoyé(?:\s+le)?|enviado|enviada|inviato|verzonden|"
    r"skickat|sendt|wysłano|data|dato|отправлено|дата|lähetetty|päivämäärä|odesláno|"
    r"message\s+du|fecha|gönderildi|tarih|elküldve|发送时间|日期|送信日時|보낸\s?날짜",
    "to": r"to|an|à|a|para|aan|till|til|do|кому|vastaanottaja|komu|címzett|kime|收件人|宛先|"
    r"받는\s?사람",
    "subject": r"subject|betreff|objet|sujet|asunto|oggetto|onderwerp|ämne|emne|temat|тема|"
    r"aihe|předmět|assunto|konu|tárgy|主题|件名|제목",
    "cc": r"cc|kopie|copie(?:\s+à)?|kopia|dw|копия|kopio|másolat|抄送|副本",
}
_FIELD = re.compile(
    "^[*_]{0,2}(?:"
    + "|".join(f"(?P<{kind}>{names})" for kind, names in _FIELD_NAMES.items())
    + r")[*_]{0,2}[ \t]{0,2}[*_]{0,2}[:：]",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^_{20,}$")
_SIGNATURE = ("-- ", "--")
_MOBILE = re.compile(
    r"^(?:sent from my\b|sent from (?:mail|outlook|yahoo)\b|get outlook for\b|"
    r"von meinem .{1,40} gesendet$|gesendet von (?:meinem|outlook|mail)\b|"
    r"envoyé de mon\b|envoyé depuis\b|enviado desde mi\b|inviato da\b|verzonden vanaf mijn\b)",
    re.IGNORECASE,
)
_ATTRIBUTION_TAIL = re.compile(rf"(?:\b{_VERBS}|@)", re.IGNORECASE)
_RULE = re.compile(r"^[-_=*~]{2,}$")
# Windows Mail puts left-to-right marks around every word of its Russian header block.
_INVISIBLE = str.maketrans(
    {
        "\u00a0": " ",
        "\u202f": " ",
        "\u2007": " ",
        "\u200b": None,
        "\u200e": None,
        "\u200f": None,
        "\u2060": None,
        "\ufeff": None,
    }
)
_RUNS_OF_SPACE = re.compile(r"[ \t]+")
# Bounds on the work for one body: an attribution line is never longer than this (nor than three
# of them joined), history that starts later than this many lines into a message is left in
# place, and only so many lines that start like an attribution or a header block are tried.
_MAX_LINE = 300
_MAX_LINES = 5000
_MAX_CANDIDATES = 200
_MAX_WRAP = 3  # lines one attribution may be wrapped over
_MAX_BLOCK = 8  # lines of one header block
_MAX_BLANK = 4  # blank lines looked past for the quote below an attribution


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
        # Text below the quote the marker introduces is the sender's too: a bottom-posted
        # reply, or answers written between the quoted lines (under an opening line or not).
        below = _bottom_posted(lines, probe, cut.line + cut.length)
        if any(line.strip() for line in below):
            end = len(kept)
            while end and not kept[end - 1].strip():
                end -= 1
            kept = [*kept[:end], "", *below] if end else below
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
    """The first marker of history in the first `_MAX_LINES` lines. Lines are tested with
    cheap anchored patterns first; at most `_MAX_CANDIDATES` go on to the full tests."""
    budget = _MAX_CANDIDATES
    for index in range(min(len(probe), _MAX_LINES)):
        line = probe[index]
        if not line:
            continue
        if _SEPARATOR.match(line):
            return _Cut(index, 1)
        if _UNDERSCORES.match(line):
            following = next(
                (n for n in range(index + 1, index + 4) if n < len(probe) and probe[n]), None
            )
            if following is not None and _header_block(probe, following):
                return _Cut(index, 1)
        if budget <= 0:
            continue
        if _FIELD.match(line):
            budget -= 1
            if _header_block(probe, index):
                return _Cut(index, 1)
        elif _starts_like_attribution(_unframed(line)):
            budget -= 1
            length = _attribution_length(probe, index)
            if length and _introduces_history(probe, index, length):
                return _Cut(index, length)
    return None


def _is_attribution(line: str) -> bool:
    """Whether one line (a wrapped one joined with spaces) introduces a quoted message:
    "On Mon, Jan 6, 2025 at 10:15 AM Support <support@example.com> wrote:" and its forms in
    other languages and clients. It opens with an opener word ("On", "Le", "W dniu") or a date,
    and ends with the verb (and the name, in German and Scandinavian) or with the sender's
    address in angle brackets, then a colon. It shows what attributions show: an address, a
    time, or (after an opener word) at least a digit. Without the colon it counts only with an
    address in it (Zoho, some Gmail forms: "… <john@doe.com> wrote")."""
    text = _unframed(line)
    if len(text) > _MAX_LINE * _MAX_WRAP:
        return False
    if _GLUED_VERB_LAST.search(text):
        return bool(_TIME.search(text))
    opener = _OPENS_WITH_WORD.match(text) is not None
    if not opener and not _OPENS_WITH_DATE.match(text):
        return False
    if not text.endswith((":", "：")):
        return "@" in text and bool(_VERB_LAST.search(text))
    head = text[:-1]
    # "On 7 Jan, Support wrote:" has no time; "In 2019 our team wrote:" is prose.
    shown = "@" in head or _TIME.search(head) or (opener and any(c.isdigit() for c in head))
    if not shown:
        return False
    if _VERB_LAST.search(text) or _VERB_THEN_NAME.search(text):
        return True
    # The verb-less form needs its time too: "On Friday send it to John <j@example.com>:".
    return bool(_ADDRESS_LAST.search(text)) and bool(_TIME.search(head))


def _unframed(line: str) -> str:
    """The line without `>` marks and the dashes Zoho frames its attribution in ("---- On …
    wrote ----"); string methods, not a pattern that would backtrack along a run of dashes."""
    text = _QUOTE_MARKS.sub("", line)
    if text.startswith("--"):
        text = text.lstrip("-").lstrip()
    if text.endswith("--"):
        text = text.rstrip("-").rstrip()
    return text


def _starts_like_attribution(text: str) -> bool:
    return bool(
        _OPENS_WITH_WORD.match(text)
        or _OPENS_WITH_DATE.match(text)
        or _GLUED_VERB_LAST.search(text[-24:])
    )


def _attribution_length(probe: list[str], index: int) -> int:
    """How many lines, from `index`, form an attribution (0: none). Clients wrap long ones
    (Gmail's text/plain at 76 columns) anywhere, even inside the address: "… Test user
    <test@example.com" / ">:". A wrapped one holds an address, and no line of it but the last
    ends a sentence or is blank."""
    parts: list[str] = []
    # The first line alone may be a whole attribution; joined ones must show an address, the
    # reason a client had to wrap it.
    for offset in range(_MAX_WRAP):
        position = index + offset
        if position >= len(probe) or not probe[position]:
            return 0
        parts.append(_QUOTE_MARKS.sub("", probe[position]))
        joined = " ".join(parts)
        if (offset == 0 or "@" in joined) and _is_attribution(joined):
            return offset + 1 if _ends_attribution(probe, joined, position) else 0
        if _SENTENCE_END.search(parts[-1]):
            return 0
    return 0


def _introduces_history(probe: list[str], index: int, length: int) -> bool:
    """Whether the attribution at `index` heads quoted history: a client's shows the sender's
    address, or has the quote (`>` lines) or nothing below it. Without either it is the
    sender's own account ("On 5 May at 10:00 my colleague wrote:"), and what follows is theirs."""
    if any("@" in line for line in probe[index : index + length]):
        return True
    below = index + length
    while below < min(len(probe), index + length + _MAX_BLANK):
        if probe[below]:
            return probe[below].startswith(">")
        below += 1
    return below >= len(probe)


def _ends_attribution(probe: list[str], joined: str, position: int) -> bool:
    """An attribution without its colon is one only where the quoted message starts below it
    (a blank line or a `>` line), not inside a paragraph."""
    if _unframed(joined).endswith((":", "：")):
        return True
    following = probe[position + 1] if position + 1 < len(probe) else ""
    return not following or following.startswith(">")


def _header_block(probe: list[str], index: int) -> bool:
    """Whether an Outlook-style header block starts at `index`: field lines one below the other
    ("From:", "Sent:", "To:", "Subject:" in the client's language), where one field may wrap
    onto a line of its own. It needs the sender and the date, or the sender, the recipient and
    the subject — "From: Berlin" / "To: Paris" in an itinerary is no header block."""
    kinds: set[str] = set()
    wrapped = False
    timed = False  # the date field shows a time, as every client's does
    for line in probe[index : index + _MAX_BLOCK]:
        field = _FIELD.match(line) if line else None
        if field is not None:
            kinds.add(str(field.lastgroup))
            timed = timed or (field.lastgroup == "sent" and bool(_TIME.search(line)))
            wrapped = False
        elif line and kinds and not wrapped:
            wrapped = True
        else:
            break
    sender_or_date = bool(kinds & {"from", "sent"})
    return ({"from", "sent"} <= kinds and timed) or (sender_or_date and {"to", "subject"} <= kinds)


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
            del lines[len(lines) - _attribution_above(lines) :]
        else:
            break
    return lines


def _attribution_above(lines: list[str]) -> int:
    """How many of the last lines are the attribution of a `>` block that followed them: a full
    attribution, or any line ending in a colon with a verb or an address — right above a
    quote, "Support wrote:" is one too."""
    full = attribution_above(lines)
    if full:
        return full
    last = _normal(lines[-1]) if lines else ""
    return 1 if last.endswith(":") and bool(_ATTRIBUTION_TAIL.search(last)) else 0


def attribution_above(lines: list[str]) -> int:
    """How many of the last `lines` (up to three: a wrapped one) form an attribution — what a
    client writes right above the message it quotes; 0 when they don't."""
    tail = [_normal(line) for line in lines[-_MAX_WRAP:]]
    for count in range(1, len(tail) + 1):
        if _attribution_length(tail, len(tail) - count) == count:
            return count
    return 0

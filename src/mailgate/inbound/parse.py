"""An email's bytes turned into the fields mailgate routes on: `parse_message(raw)`.

Pure and total: no I/O, and no input makes it raise — a message the stdlib parser cannot read
at all still yields an `InboundMessage` (with empty fields and a note in `defects`), so one bad
message can never stop a mailbox. MIME is read with the stdlib `email` package and
`policy.default` (never `compat32`); the rest is in small modules beside this one:

- `headerblock` the top-level header block bounded and mended before the stdlib reads it
- `headers`  header values: encoded words, ids, dates, Authentication-Results
- `addresses` From, To and Cc as RFC 5322 reads them; the author, or why there is none
- `parameters` Content-Type and Content-Disposition parameters (RFC 2045, RFC 2231)
- `mime`     the MIME tree: body texts, attachments, damaged encodings
- `charsets` bytes to text when the declared charset is missing, unknown or wrong
- `htmltext` HTML to text, and the HTML quote containers cut out
- `markup`   HTML rewritten, in one pass, into markup the tree builder reads in linear time
- `quotes`   the new part of a reply, without the quoted history
- `classify` why a message is automated
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from typing import Any

from mailgate.inbound.addresses import Mailbox, author, recipients
from mailgate.inbound.charsets import decode_bytes
from mailgate.inbound.classify import Automated, classify
from mailgate.inbound.headerblock import bound_header_block
from mailgate.inbound.headers import (
    MAX_ID,
    POLICY,
    AuthResults,
    decode_text,
    first_message_id,
    message_ids,
    one_line,
    parse_auth_results,
    parse_date,
    repair_8bit,
)
from mailgate.inbound.htmltext import render
from mailgate.inbound.mime import Attachment, BodyPiece, clean_text, params, walk
from mailgate.inbound.quotes import split_reply, strip_quoted

__all__ = [
    "ISSUE_KEY",
    "Address",
    "Attachment",
    "AuthResults",
    "InboundMessage",
    "parse_message",
]

# An issue key: project key (a capital letter, then capitals, digits or "_") and a number; not
# glued to a longer word or number ("XHELP-1" is one key, "HELP-12" never becomes "HELP-1").
ISSUE_KEY = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]+-[0-9]+(?![0-9])")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_PARSER = BytesParser(policy=POLICY)
# Substrings that show an HTML body holds a quote container worth rendering for.
_HTML_QUOTE_HINTS = (
    "gmail_quote",
    "cite",
    "divRplyFwdMsg",
    "appendonsend",
    "moz-",
    "yahoo_quoted",
    "border-top:solid",
    "protonmail_quote",
    "OutlookMessageHeader",
    "mail-editor-reference-message-container",
    "zmail_extra",
    # A plain blockquote right below an attribution line (Yandex, mail.ru).
    "<blockquote",
    "<BLOCKQUOTE",
)


@dataclass(frozen=True)
class Address:
    """A mailbox: the decoded display name (None when there is none) and the lower-case
    address ("" when the header is missing or unreadable)."""

    name: str | None
    address: str


@dataclass(frozen=True)
class InboundMessage:
    """Everything mailgate needs from one received message.

    Text fields never carry CR or LF where they are one line (`subject`, names, ids).
    `from_` is the From mailbox; its address is "" when From gives no usable one, and
    `from_problem` then says why in one sentence ("the From header holds a group, not a
    mailbox"). `to` and `cc` hold only usable addresses, lower-case, each once.
    `headers` are the top-level header fields as (name, value) pairs in order, values
    unfolded but not decoded — what `classify` and the router read (Auto-Submitted, List-Id,
    Delivered-To, …). `defects` notes what was repaired (a charset that lied, damaged base64)
    and what was cut or left out to keep a message's cost bounded.
    """

    message_id: str | None = None
    subject: str = ""
    from_: Address = field(default_factory=lambda: Address(None, ""))
    from_problem: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    issue_keys: tuple[str, ...] = ()
    body_text: str = ""
    body_html: str | None = None
    reply_text: str = ""
    attachments: tuple[Attachment, ...] = ()
    automated: Automated | None = None
    headers: tuple[tuple[str, str], ...] = ()
    authentication_results: tuple[str, ...] = ()
    auth: AuthResults = field(default_factory=AuthResults)
    content_type: str = "text/plain"
    defects: tuple[str, ...] = ()

    @property
    def from_address(self) -> str:
        """The sender's lower-case address ("" when unknown)."""
        return self.from_.address

    @property
    def from_name(self) -> str | None:
        """The sender's decoded display name, if any."""
        return self.from_.name

    @property
    def authentication(self) -> str:
        """The receiving provider's verdicts, "spf=pass dkim=pass dmarc=pass"; "" when the
        message carries no Authentication-Results."""
        return self.auth.summary

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` (case-insensitive), in order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)

    def as_json(self, file: str) -> dict[str, Any]:
        """The `mailgate parse --json` object (docs/cli.md), plus `content_id` per attachment,
        the Authentication-Results verdicts and the repair notes."""
        return {
            "file": file,
            "message_id": self.message_id,
            "subject": self.subject,
            "from": {"name": self.from_.name, "address": self.from_.address},
            "from_problem": self.from_problem,
            "to": list(self.to),
            "cc": list(self.cc),
            "date": self.date.isoformat() if self.date else None,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "issue_keys": list(self.issue_keys),
            "body_text": self.body_text,
            "reply_text": self.reply_text,
            "attachments": [
                {
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "size": attachment.size,
                    "inline": attachment.inline,
                    "content_id": attachment.content_id,
                }
                for attachment in self.attachments
            ],
            "automated": self.automated,
            "authserv_id": self.auth.authserv_id,
            "spf": self.auth.spf,
            "dkim": self.auth.dkim,
            "dmarc": self.auth.dmarc,
            "defects": list(self.defects),
        }


def parse_message(raw: bytes | bytearray | memoryview) -> InboundMessage:
    """Parse one message from its raw bytes (as fetched: CRLF or LF line ends). Never raises,
    but for MemoryError: running out of the parsing process's memory limit is the limit acting
    (`parsers`), not a message to read less of."""
    data = bytes(raw)
    try:
        return _parse(data)
    except MemoryError:
        raise
    except Exception as error:  # the stdlib parser has crashed on hostile input before
        note = f"unreadable MIME structure ({type(error).__name__}); headers only"
    try:
        return _parse_headers_only(data, note)
    except MemoryError:
        raise
    except Exception as error:
        return InboundMessage(
            from_problem="the message could not be read",
            defects=(f"unreadable message ({type(error).__name__})",),
        )


def _parse(data: bytes) -> InboundMessage:
    data, notes = bound_header_block(data)
    message = _PARSER.parsebytes(data)
    headers = _header_pairs(message)
    collected = walk(message)
    body_text, body_html, reply_text = _texts(collected.pieces)
    defects = notes + [type(defect).__name__ for defect in message.defects] + collected.defects
    return _assemble(
        headers,
        content_type=_top_content_type(message),
        report_type=_report_type(message),
        body_text=body_text,
        body_html=body_html,
        reply_text=reply_text,
        attachments=tuple(collected.attachments),
        part_types=collected.part_types,
        defects=defects,
    )


def _parse_headers_only(data: bytes, note: str) -> InboundMessage:
    data, notes = bound_header_block(data)
    message = _PARSER.parsebytes(data, headersonly=True)
    headers = _header_pairs(message)
    payload = message.get_payload()
    raw_body = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    body_text = clean_text(decode_bytes(raw_body, None)[0])
    return _assemble(
        headers,
        content_type="text/plain",
        report_type=None,
        body_text=body_text,
        body_html=None,
        reply_text=strip_quoted(body_text),
        attachments=(),
        part_types=[],
        defects=[note, *notes],
    )


def _assemble(
    headers: tuple[tuple[str, str], ...],
    *,
    content_type: str,
    report_type: str | None,
    body_text: str,
    body_html: str | None,
    reply_text: str,
    attachments: tuple[Attachment, ...],
    part_types: list[str],
    defects: list[str],
) -> InboundMessage:
    first = _First(headers)
    subject = decode_text(first.get("subject") or "")
    mailbox, from_problem, from_notes = author(first.all("from"))
    to, to_notes = recipients(first.all("to"))
    cc, cc_notes = recipients(first.all("cc"))
    message_id = first_message_id(first.get("message-id"))
    notes = [f"From: {note}" for note in from_notes]
    notes += [f"To: {note}" for note in to_notes] + [f"Cc: {note}" for note in cc_notes]
    if message_id is None and (first.get("message-id") or "").strip():
        notes.append(f"Message-ID: no id of at most {MAX_ID} characters")
    auth_values = tuple(one_line(value) for value in first.all("authentication-results"))
    # The topmost Authentication-Results is the one the receiving provider added; any below it
    # came with the message and could be forged (RFC 8601 §5).
    auth = parse_auth_results(auth_values[0]) if auth_values else AuthResults()
    checked_elsewhere = _checked_another_domain(mailbox.address, auth.dmarc_domain)
    if checked_elsewhere is not None:
        from_problem = checked_elsewhere
        mailbox = Mailbox(mailbox.name, "", mailbox.spec)
    return InboundMessage(
        message_id=message_id,
        subject=subject,
        from_=Address(mailbox.name, mailbox.address),
        from_problem=from_problem,
        to=to,
        cc=cc,
        date=parse_date(first.get("date")),
        in_reply_to=first_message_id(first.get("in-reply-to")),
        references=tuple(message_ids(first.get("references") or "")),
        issue_keys=_issue_keys(subject),
        body_text=body_text,
        body_html=body_html,
        reply_text=reply_text,
        attachments=attachments,
        automated=classify(
            headers,
            # A From without a domain ("MAILER-DAEMON") still tells a bounce by its local part.
            from_address=mailbox.address or mailbox.spec.strip(),
            content_type=content_type,
            report_type=report_type,
            part_types=part_types,
            subject=subject,
        ),
        headers=headers,
        authentication_results=auth_values,
        auth=auth,
        content_type=content_type,
        defects=tuple(dict.fromkeys(defects + notes)),
    )


def _checked_another_domain(address: str, checked: str | None) -> str | None:
    """Why the From address is no reporter when the receiving provider's DMARC check judged
    another From domain (`header.from`, RFC 7489 §11.2) — it read the From header otherwise,
    and its verdict says nothing of this address; None when it judged this one, its parent or a
    subdomain (some report the organizational domain), or did not say."""
    domain = address.rpartition("@")[2].rstrip(".")
    if not domain or not checked or not (domain.isascii() and checked.isascii()):
        return None
    if domain == checked or domain.endswith("." + checked) or checked.endswith("." + domain):
        return None
    shown = checked if len(checked) <= 80 else checked[:80] + "…"
    return f"the receiving provider checked the From domain {shown}, not {domain}"


class _First:
    """Header lookup by lower-case name; duplicates keep their order (the first wins)."""

    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in headers:
            self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._values.get(name, [])


def _header_pairs(message: Message) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, value in message.raw_items():
        text = repair_8bit(_UNFOLD.sub("", str(value)))
        pairs.append((one_line(str(name)), text.replace("\r", " ").replace("\n", " ").strip()))
    return tuple(pairs)


def _issue_keys(subject: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ISSUE_KEY.findall(subject)))


def _top_content_type(message: Message) -> str:
    try:
        return message.get_content_type().lower()
    except Exception:
        return "text/plain"


def _report_type(message: Message) -> str | None:
    value = params(message, "content-type").get("report-type")
    return one_line(value).lower() if value else None


def _texts(pieces: list[BodyPiece]) -> tuple[str, str | None, str]:
    """(body_text, body_html, reply_text). Plain text is preferred; HTML is turned into text
    where a piece has no plain rendering. When the plain text shows no quote but the HTML may
    hold a quote container, the HTML decides: its markup marks history more reliably."""
    markups = [piece.html for piece in pieces if piece.html is not None]
    html = "\n".join(markups) if markups else None
    if all(piece.plain is not None for piece in pieces):
        plain = _join([piece.plain or "" for piece in pieces])
        reply, quoted = split_reply(plain)
        if not quoted and html and any(hint in html for hint in _HTML_QUOTE_HINTS):
            rendered = render(html)
            if rendered.quote_found:
                reply = strip_quoted(rendered.reply)
        return plain, html, reply
    texts: list[str] = []
    replies: list[str] = []
    for piece in pieces:
        if piece.plain is not None:
            texts.append(piece.plain)
            replies.append(piece.plain)
        elif piece.html is not None:
            rendered = render(piece.html)
            texts.append(rendered.text)
            replies.append(rendered.reply)
    return _join(texts), html, strip_quoted(_join(replies))


def _join(texts: list[str]) -> str:
    return "\n\n".join(text.strip("\n") for text in texts if text.strip())

"""The MIME tree walked once: the body texts (plain and HTML) and the attachments.

Hardened for what senders get wrong: charsets that are unknown or lie, 8-bit text without a
charset, damaged base64 and quoted-printable, `message/rfc822` parts sent base64-encoded, trees
nested deeper than anyone writes. Nothing here raises for a sender's mistake; what was repaired
is noted in `Collected.defects`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage, Message

from mailgate.inbound.charsets import decode_bytes
from mailgate.inbound.headers import MAX_ID, POLICY, decode_text, one_line, repair_8bit
from mailgate.inbound.parameters import parse_parameters

__all__ = ["Attachment", "BodyPiece", "Collected", "clean_text", "params", "unflow", "walk"]

_MAX_DEPTH = 32  # no client nests deeper; a hostile tree stops here
_SERIALIZE = POLICY.clone(refold_source="none", max_line_length=None, linesep="\r\n")
_EXTENSIONS = {
    "application/ms-tnef": ".dat",
    "application/msword": ".doc",
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/zip": ".zip",
    "image/gif": ".gif",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "message/delivery-status": ".txt",
    "message/global": ".eml",
    "message/rfc822": ".eml",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/html": ".html",
    "text/plain": ".txt",
}
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I
)
# Control characters other than tab and line breaks, and the BOM iOS Mail puts at the start of
# quoted text: never readable, and PostgreSQL refuses NUL in text.
_INVISIBLE_NOISE = str.maketrans(
    dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFEFF])
)
_LINE_BREAK = re.compile(r"\r?\n")
_HEAD_FIELDS = frozenset({"content-type", "content-disposition", "content-id"})
_MAX_SUBJECT = 4096  # of a forwarded message, for its file name (cut to 120 characters)
_BASE64_NOISE = re.compile(rb"[^A-Za-z0-9+/=]")
_BASE64_CHUNKS = re.compile(rb"=+")


@dataclass(frozen=True)
class Attachment:
    """A file the message carries. `data` is the decoded bytes (after base64 or
    quoted-printable); `inline` says the sender placed it in the body (an image shown by
    `Content-ID`), not as a separate file; `content_id` without angle brackets."""

    filename: str
    content_type: str
    inline: bool
    content_id: str | None
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Bytes after transfer decoding."""
        return len(self.data)


@dataclass(frozen=True)
class BodyPiece:
    """One stretch of the body, in one or two renderings. A multipart/mixed holds several in
    order (text, an image, more text); a multipart/alternative is one piece with both."""

    plain: str | None
    html: str | None


@dataclass
class Collected:
    """What one walk found: body pieces and attachments in document order, every part's
    content type (for classification), and notes on what was repaired."""

    pieces: list[BodyPiece] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    part_types: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def walk(message: Message) -> Collected:
    """Collect the body texts and attachments of `message`, in document order."""
    out = Collected()
    _visit(message, out, 0)
    return out


@dataclass(frozen=True)
class _Head:
    """A part's own MIME headers, read once from their raw values (`parameters`)."""

    type_params: Mapping[str, str]
    disposition: str | None
    disposition_params: Mapping[str, str]
    content_id: str | None
    notes: tuple[str, ...]


def _head(part: Message) -> _Head:
    found: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower()
        if key in _HEAD_FIELDS and key not in found:
            found[key] = _LINE_BREAK.sub("", repair_8bit(str(value)))
    content_type = parse_parameters(found.get("content-type", ""))
    disposition = parse_parameters(found.get("content-disposition", ""))
    content_id = one_line(found.get("content-id", "")[:MAX_ID]).strip("<> ")
    return _Head(
        type_params=content_type.params,
        disposition=disposition.kind or None,
        disposition_params=disposition.params,
        content_id=content_id or None,
        notes=tuple(f"Content-Type: {note}" for note in content_type.notes)
        + tuple(f"Content-Disposition: {note}" for note in disposition.notes),
    )


def _visit(part: Message, out: Collected, depth: int) -> None:
    content_type = _content_type(part)
    out.part_types.append(content_type)
    head = _head(part)
    out.defects.extend(head.notes)
    if depth > _MAX_DEPTH:
        out.defects.append("MIME parts nested too deeply; the innermost were skipped")
        return
    if content_type.startswith("message/"):
        # Parsed into sub-messages (a forward) or header blocks (a delivery status): either
        # way a file, never body text.
        out.attachments.append(
            _embedded_message(part, head, content_type, len(out.attachments), out)
        )
        return
    if part.is_multipart():
        children = _children(part)
        if content_type == "multipart/alternative":
            _alternative(children, out, depth)
        else:
            for child in children:
                _visit(child, out, depth + 1)
        return
    if content_type.startswith("multipart/"):
        # Its body could not be split (`headers.MAX_NESTING`): the bytes stay, as one file.
        out.defects.append(
            "a multipart without a usable boundary, or nested too deeply, was kept as a file"
        )
    disposition = head.disposition
    filename = _filename(head)
    if content_type in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text = _text_of(part, head, content_type, out)
        if content_type == "text/plain":
            out.pieces.append(BodyPiece(plain=_unflow_if_flowed(head, text), html=None))
        else:
            out.pieces.append(BodyPiece(plain=None, html=text))
        return
    out.attachments.append(
        Attachment(
            filename=filename or _default_name(content_type, len(out.attachments)),
            content_type=content_type,
            inline=disposition == "inline" or (disposition is None and head.content_id is not None),
            content_id=head.content_id,
            data=_payload_bytes(part, out, filename or content_type),
        )
    )


def _alternative(children: list[Message], out: Collected, depth: int) -> None:
    """RFC 2046 §5.1.4: the same content in increasing faithfulness. Keep the first plain
    rendering and the last HTML one, as one piece; attachments of every alternative (inline
    images of a multipart/related) are kept."""
    plain: str | None = None
    html: str | None = None
    for child in children:
        inner = Collected()
        _visit(child, inner, depth + 1)
        texts = [piece.plain for piece in inner.pieces]
        if plain is None and texts and all(text is not None for text in texts):
            joined = _join([text for text in texts if text is not None])
            plain = joined if joined.strip() else None
        markups = [piece.html for piece in inner.pieces if piece.html is not None]
        if any(markup.strip() for markup in markups):
            html = "\n".join(markups)
        out.attachments.extend(inner.attachments)
        out.part_types.extend(inner.part_types)
        out.defects.extend(inner.defects)
    if plain is not None or html is not None:
        out.pieces.append(BodyPiece(plain=plain, html=html))


def _join(texts: list[str]) -> str:
    return "\n\n".join(text.strip("\n") for text in texts if text.strip())


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def _content_type(part: Message) -> str:
    try:
        return one_line(part.get_content_type()).lower() or "application/octet-stream"
    except Exception:
        return "application/octet-stream"


def params(part: Message, header: str) -> Mapping[str, str]:
    """The parameters of a Content-Type or Content-Disposition header, RFC 2231 decoded, names
    lower-case (RFC 2047 words inside quotes are left as they are); empty when the header is
    missing. Read from the raw value in linear time (`parameters`), never by the stdlib's
    parser, whose cost grows with the square of the value."""
    raw = _raw(part, header)
    return parse_parameters(raw).params if raw is not None else {}


def _raw(part: Message, header: str) -> str | None:
    """The first `header` of `part` as the sender wrote it, unfolded, 8-bit bytes read as
    UTF-8 (RFC 6532) — not the stdlib's parsed header object."""
    wanted = header.lower()
    for name, value in part.raw_items():
        if name.lower() == wanted:
            return _LINE_BREAK.sub("", repair_8bit(str(value)))
    return None


def _filename(head: _Head) -> str | None:
    """The decoded file name (RFC 2231 `filename*=`, or RFC 2047 words inside quotes as
    Outlook and Gmail write them), reduced to a base name without control characters."""
    name = head.disposition_params.get("filename") or head.type_params.get("name")
    if not name:
        return None
    name = decode_text(name).replace("\\", "/").rsplit("/", 1)[-1]
    if not name.isascii():
        # Format characters show as nothing, or turn the text around: "invoice\u202efdp.exe"
        # shows as "invoiceexe.pdf", a program passed off as a document.
        name = "".join(char for char in name if unicodedata.category(char) != "Cf")
    name = name.strip(". ")
    return name[:255] or None


def _default_name(content_type: str, index: int) -> str:
    if content_type == "message/delivery-status":
        return "delivery-status.txt"
    extension = _EXTENSIONS.get(content_type, ".bin")
    return f"{content_type.partition('/')[0]}-{index + 1}{extension}"


def _embedded_message(
    part: Message, head: _Head, content_type: str, index: int, out: Collected
) -> Attachment:
    """A forwarded message kept whole as a .eml attachment, named after its subject."""
    inner = _children(part) if content_type in ("message/rfc822", "message/global") else []
    content = _serialize(inner[0]) if inner else _payload_bytes(part, out, content_type)
    transfer = str(part.get("content-transfer-encoding", "")).strip().lower()
    if inner and transfer in ("base64", "quoted-printable"):
        # Illegal for message/* (RFC 2046 §5.2.1) yet sent: the parser read the encoded text
        # as the message; decode it back.
        body = content.lstrip(b"\r\n")
        content = _lenient_base64(body, out, "message") if transfer == "base64" else _qp(body)
    subject = ""
    if inner and transfer not in ("base64", "quoted-printable"):
        raw_subject = _raw(inner[0], "subject")
        subject = decode_text(raw_subject[:_MAX_SUBJECT]) if raw_subject is not None else ""
    name = _filename(head) or (
        f"{subject.replace('/', '_')[:120]}.eml" if subject else _default_name(content_type, index)
    )
    return Attachment(
        filename=name,
        content_type=content_type,
        inline=False,
        content_id=head.content_id,
        data=content,
    )


def _serialize(message: Message) -> bytes:
    buffer = io.BytesIO()
    try:
        if isinstance(message, EmailMessage):  # always, from a policy.default parser
            BytesGenerator(buffer, mangle_from_=False, policy=_SERIALIZE).flatten(message)
            return buffer.getvalue()
        return message.as_bytes()
    except Exception:
        try:
            return message.as_bytes()
        except Exception:
            return b""


def _payload_bytes(part: Message, out: Collected, label: str) -> bytes:
    transfer = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = part.get_payload()
    if isinstance(payload, list):
        return b"".join(_serialize(child) for child in payload if isinstance(child, Message))
    if transfer == "base64":
        # Our own decoder, not the stdlib's: it gives up on a damaged length (and returns the
        # encoded text as the content), where skipping the stray character recovers the file.
        return _lenient_base64(str(payload).encode("utf-8", "surrogateescape"), out, label)
    try:
        decoded = part.get_payload(decode=True)  # quoted-printable, uuencode, 7bit/8bit as is
    except Exception:
        decoded = None
    if isinstance(decoded, bytes):
        return decoded
    return str(payload).encode("utf-8", "surrogateescape")


def _lenient_base64(data: bytes, out: Collected, label: str) -> bytes:
    """Decode what can be decoded: stray characters are skipped, and padding in the middle
    (chunks encoded separately and glued together) starts a new chunk."""
    compact = data.translate(None, b" \t\r\n")
    if len(compact) % 4 == 0 and b"=" not in compact[:-2]:
        try:  # the common case, intact: one strict pass in C
            return binascii.a2b_base64(compact, strict_mode=True)
        except binascii.Error:
            pass
    cleaned = _BASE64_NOISE.sub(b"", data)
    damaged = len(cleaned) != len(data.translate(None, b" \t\r\n"))
    decoded = []
    for chunk in _BASE64_CHUNKS.split(cleaned):
        if len(chunk) % 4 == 1:
            chunk = chunk[:-1]
            damaged = True
        if not chunk:
            continue
        try:
            decoded.append(base64.b64decode(chunk + b"=" * (-len(chunk) % 4)))
        except (binascii.Error, ValueError):
            damaged = True
    if damaged:
        out.defects.append(f"damaged base64 in {label!r}; decoded what could be read")
    return b"".join(decoded)


def _qp(data: bytes) -> bytes:
    try:
        return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        return data


def _text_of(part: Message, head: _Head, content_type: str, out: Collected) -> str:
    data = _payload_bytes(part, out, content_type)
    declared = head.type_params.get("charset") or None
    if declared is None and content_type == "text/html":
        meta = _META_CHARSET.search(data[:4096])
        declared = meta.group(1).decode("ascii").lower() if meta else None
    text, note = decode_bytes(data, declared)
    if note:
        out.defects.append(f"{content_type}: {note}")
    return clean_text(text)


def clean_text(text: str) -> str:
    """Line ends as "\n"; no control characters but tab and newline; no BOM."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_INVISIBLE_NOISE)


def _unflow_if_flowed(head: _Head, text: str) -> str:
    found = head.type_params
    if found.get("format", "").lower() != "flowed":
        return text
    return unflow(text, delsp=found.get("delsp", "").lower() == "yes")


def unflow(text: str, *, delsp: bool = False) -> str:
    """RFC 3676 format=flowed: join soft-broken lines (ending in a space) of the same quote
    depth, remove space-stuffing; the signature separator "-- " is never joined."""
    out: list[str] = []
    paragraph: list[str] = []
    depth_of_paragraph = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if paragraph and depth != depth_of_paragraph:
            out.append(_quoted(depth_of_paragraph, "".join(paragraph)))
            paragraph = []
        if soft and delsp:
            content = content[:-1]
        paragraph.append(content)
        depth_of_paragraph = depth
        if not soft:
            out.append(_quoted(depth, "".join(paragraph)))
            paragraph = []
    if paragraph:
        out.append(_quoted(depth_of_paragraph, "".join(paragraph)))
    return "\n".join(out)


def _quoted(depth: int, content: str) -> str:
    return f"{'>' * depth} {content}" if depth else content

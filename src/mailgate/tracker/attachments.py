"""An issue's attachments as the desk hands them out: the bytes of one (only through the issue
it belongs to), and what the bytes really are when they are a picture a browser may show.

A sender chooses the declared content type and the file name; neither decides how a browser
treats the file. Only the first bytes do, and only for four raster formats that cannot carry
script: PNG, JPEG, GIF and WebP. SVG is XML that can hold script, so it is never a picture here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgate.errors import NotFound
from mailgate.store.models import Attachment, Blob
from mailgate.tracker.service import blob, get_issue

# The signatures of the formats, at the start of the file (each format's specification:
# PNG §5.2, JPEG's SOI marker followed by another marker, GIF87a/GIF89a, WebP's RIFF container).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
HEAD = 16  # bytes read to tell the type


def image_type(head: bytes) -> str | None:
    """`image/png`, `image/jpeg`, `image/gif` or `image/webp` when the bytes start as that
    format does; None for anything else, whatever its declared type."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_types(session: Session, attachment_ids: list[int]) -> dict[int, str | None]:
    """What each attachment really is (`image_type`), reading only each file's first bytes."""
    if not attachment_ids:
        return {}
    rows = session.execute(
        select(Attachment.id, func.substr(Blob.data, 1, HEAD))
        .join(Blob, Blob.sha256 == Attachment.sha256)
        .where(Attachment.id.in_(attachment_ids))
    )
    return {int(row_id): image_type(bytes(head or b"")) for row_id, head in rows}


@dataclass(frozen=True)
class AttachmentFile:
    filename: str
    content_type: str  # as the sender declared it: never trusted to decide anything
    data: bytes

    @property
    def image_type(self) -> str | None:
        return image_type(self.data[:HEAD])


def attachment_file(session: Session, key: str, attachment_id: int) -> AttachmentFile:
    """The attachment `attachment_id` of the issue `key`; another issue's is not found here."""
    _, issue = get_issue(session, key)
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.issue_id != issue.id:
        raise NotFound(f"{key} has no attachment {attachment_id}: its page lists its attachments.")
    data = blob(session, attachment.sha256)
    if data is None:
        raise NotFound(f"The content of attachment {attachment_id} of {key} is missing.")
    return AttachmentFile(attachment.filename, attachment.content_type, data)

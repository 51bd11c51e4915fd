"""An attachment handed to a browser, for the issue page and the API alike.

Whatever a sender attached is served so that no browser runs it: always as a download
(`Content-Disposition: attachment`), with `X-Content-Type-Options: nosniff`, and as
`application/octet-stream` unless its first bytes are those of a PNG, JPEG, GIF or WebP
picture (`tracker.attachments.image_type`). Only such a picture has a preview, shown inline,
under a policy that lets it load nothing at all.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from fastapi.responses import Response

from mailgate.tracker.attachments import AttachmentFile

OCTET_STREAM = "application/octet-stream"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# RFC 6266 §4.3: the recipient must not trust a path in the name; control characters could
# end the header; quotes and backslashes would end or escape the quoted string.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')
MAX_NAME = 150  # characters of a file name kept


def safe_filename(filename: str) -> str:
    """The name a file is saved under: no path, no control character, no leading dot (a
    hidden file), at most `MAX_NAME` characters; "attachment" when nothing is left."""
    name = "".join(c for c in filename if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    name = _UNSAFE.sub("_", name).strip(" ._")
    return name[:MAX_NAME].strip() or "attachment"


def content_disposition(kind: str, filename: str) -> str:
    """`attachment` or `inline`, with the name twice (RFC 6266 §4.3, RFC 8187): an ASCII
    stand-in in `filename`, the name itself in `filename*` when it is not ASCII."""
    name = safe_filename(filename)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def download(file: AttachmentFile) -> Response:
    """The file as a download: a picture under its real type, anything else as bytes."""
    return Response(
        file.data,
        media_type=file.image_type or OCTET_STREAM,
        headers={
            "content-disposition": content_disposition("attachment", file.filename),
            "x-content-type-options": "nosniff",
        },
    )


def preview(file: AttachmentFile) -> Response | None:
    """A picture shown in the page: inline, under its real type, allowed to load nothing;
    None for anything that is not a PNG, JPEG, GIF or WebP picture (an SVG never is)."""
    kind = file.image_type
    if kind is None:
        return None
    return Response(
        file.data,
        media_type=kind,
        headers={
            "content-disposition": content_disposition("inline", file.filename),
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'",
        },
    )


def raw_download(filename: str, data: bytes) -> Response:
    """Bytes as a file to save, never shown, whatever they hold (a quarantined message's .eml)."""
    return Response(
        data,
        media_type=OCTET_STREAM,
        headers={
            "content-disposition": content_disposition("attachment", filename),
            "x-content-type-options": "nosniff",
        },
    )

"""Bytes to text when the declared charset may be missing, unknown or wrong.

Order: the declared charset (read as the superset clients really mean), unless single-byte text
turns out to be valid UTF-8; then UTF-8; then Windows-1252; then Latin-1, which never fails.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode_bytes"]

# Labels that in practice mean a superset (the WHATWG Encoding Standard maps them the same way
# for the web): mail clients write "iso-8859-1" and send Windows-1252 quotes and euro signs.
_SUPERSETS = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
}
# Single-byte charsets: declared with bytes that are valid UTF-8, the declaration is a lie
# (valid multi-byte UTF-8 sequences almost never occur in real single-byte text).
_SINGLE_BYTE = re.compile(
    r"^(?:us-?ascii|ascii|ansi_x3\.4-1968|iso[-_]?8859[-_]?\d+(?:-i)?|latin-?\d|"
    r"windows-125\d|cp125\d)$"
)


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Text from bytes: the declared charset, unless it lies; then UTF-8, then Windows-1252,
    then Latin-1 (which never fails). Returns the text and a note when it fell back."""
    label = (declared or "").strip().strip("\"'").lower()
    codec = _codec(_SUPERSETS.get(label, label)) if label else None
    if codec is not None and _SINGLE_BYTE.match(label) and not data.isascii():
        try:
            return data.decode("utf-8"), f"declared {label!r} but holds UTF-8; read as UTF-8"
        except UnicodeDecodeError:
            pass
    if codec is not None:
        try:
            return data.decode(codec), None
        except (UnicodeDecodeError, ValueError, LookupError):
            pass
    if data.isascii():
        return data.decode("ascii"), None
    note = (
        f"not valid {label!r}" if codec else f"unknown charset {label!r}" if label else "no charset"
    )
    for fallback in ("utf-8", "cp1252"):
        try:
            return data.decode(fallback), f"{note}; read as {fallback}"
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), f"{note}; read as latin-1"


def _codec(label: str) -> str | None:
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    # Non-text codecs (base64, zlib, hex) are found by lookup but are no charset.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name

"""Bytes to text when the declared charset may be missing, unknown or wrong.

Order: the declared charset (read as the superset clients really mean), unless single-byte text
turns out to be valid UTF-8; then UTF-8; then Windows-1252; then Latin-1, which never fails.

ISO-2022-JP is read as the WHATWG Encoding Standard reads it (§13.2, "iso-2022-jp decoder"): its
JIS X 0208 table holds the NEC row 13 signs (①, ㈱, ㎡) and the IBM extension rows that Windows
and Japanese mobile mailers send under that label, which Python's iso2022_jp codecs refuse.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode_bytes", "decode_iso2022jp"]

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
    # Microsoft's names for its ISO-2022-JP variants (CP50220-50222): the same escapes.
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "iso-2022-jp-ms": "iso2022_jp",
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
        japanese = _iso2022jp_best(data, label) if codec.startswith("iso2022_jp") else None
        if japanese is not None:
            return japanese
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


def _iso2022jp_best(data: bytes, label: str) -> tuple[str, str | None] | None:
    """ISO-2022-JP that the standard codec refused. 7-bit: the wide table, then ISO-2022-JP-2's
    extra sets, then replacement marks — never the escape sequences shown as text. 8-bit: the
    label lies (Japanese mailers send Shift_JIS under it); UTF-8, then CP932, else None."""
    if not data.isascii():
        for fallback in ("utf-8", "cp932"):
            try:
                return data.decode(fallback), f"declared {label!r} but 8-bit; read as {fallback}"
            except UnicodeDecodeError:
                continue
        return None
    wider = decode_iso2022jp(data)
    if wider is not None:
        return wider, None
    try:
        return data.decode("iso2022_jp_2"), None
    except UnicodeDecodeError:
        return data.decode("iso2022_jp", "replace"), f"not valid {label!r}; bytes replaced"


# Python codecs no mailer writes: domain-label encodings (Python's punycode decoder takes time
# growing with the square of its input: 1 MB, 12 s), Python string escapes, and codecs that only
# raise or need a table.
_NOT_CHARSETS = frozenset(
    {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined", "charmap"}
)


def _codec(label: str) -> str | None:
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    # Non-text codecs (base64, zlib, hex) are found by lookup but are no charset, nor are the
    # text codecs of `_NOT_CHARSETS`.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


# ISO-2022-JP switches sets with escape sequences (RFC 1468 §2): ESC ( B ASCII, ESC ( J JIS X 0201
# Roman, ESC ( I half-width katakana (WHATWG, not RFC 1468), ESC $ @ and ESC $ B JIS X 0208.
_JP_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B)")
_JP_ASCII = re.compile(rb"[\x00-\x0d\x10-\x1a\x1c-\x7f]*")
_JP_KATAKANA = re.compile(rb"[\x21-\x5f]*")
_JP_DOUBLE = re.compile(rb"(?:[\x21-\x7e][\x21-\x7e])*")
_JP_LINE_END = re.compile(rb"[\r\n]")


def _jis_to_shift_jis_tables() -> tuple[bytes, bytes, bytes]:
    """Byte tables that turn a JIS X 0208 pair (row byte, cell byte) into its Shift_JIS pair, the
    encoding Windows' CP932 table is written in: lead from the row byte; trail from the cell
    byte with bit 7 set when the row byte is odd (cell bytes are 7-bit, so one table serves)."""
    lead = bytearray(256)
    odd_bit = bytearray(256)
    trail = bytearray(256)
    for row in range(0x21, 0x7F):
        shifted = ((row - 0x21) >> 1) + 0x81
        lead[row] = shifted + 0x40 if shifted > 0x9F else shifted
        odd_bit[row] = 0x80 if row & 1 else 0
    for cell in range(0x21, 0x7F):
        trail[cell] = cell + 0x7E
        trail[cell | 0x80] = cell + 0x1F + (1 if cell >= 0x60 else 0)
    return bytes(lead), bytes(odd_bit), bytes(trail)


_SJIS_LEAD, _SJIS_ODD_ROW, _SJIS_TRAIL = _jis_to_shift_jis_tables()


def decode_iso2022jp(data: bytes) -> str | None:
    """ISO-2022-JP with the NEC and IBM extension rows, as browsers and Windows decode it; None
    when `data` is not ISO-2022-JP at all (8-bit bytes, an unknown escape, a broken pair)."""
    if not data.isascii():
        return None
    pieces = _JP_ESCAPE.split(data)
    texts = [_jp_ascii(pieces[0])]
    for designation, run in zip(pieces[1::2], pieces[2::2], strict=True):
        texts.append(_JP_RUNS[designation](run))
    if any(text is None for text in texts):
        return None
    return "".join(text for text in texts if text is not None)


def _jp_ascii(run: bytes) -> str | None:
    # SO, SI and a stray ESC are errors in every ISO-2022-JP decoder.
    return run.decode("ascii") if _JP_ASCII.fullmatch(run) else None


def _jp_roman(run: bytes) -> str | None:
    text = _jp_ascii(run)
    return None if text is None else text.replace("\\", "\u00a5").replace("~", "\u203e")


def _jp_katakana(run: bytes) -> str | None:
    if not _JP_KATAKANA.fullmatch(run):
        return None
    return "".join(chr(0xFF61 - 0x21 + byte) for byte in run)


def _jp_double(run: bytes) -> str | None:
    """A JIS X 0208 run. A line end inside it returns to ASCII (WHATWG: mailers that forget the
    ESC ( B before the newline still decode)."""
    end = _JP_LINE_END.search(run)
    pairs, rest = (run[: end.start()], run[end.start() :]) if end else (run, b"")
    tail = _jp_ascii(rest)
    if tail is None or not _JP_DOUBLE.fullmatch(pairs):
        return None
    rows, cells = pairs[0::2], pairs[1::2]
    # Mark each cell byte with its row's parity in bit 7: one C-level OR over the whole run.
    marked = int.from_bytes(cells, "big") | int.from_bytes(rows.translate(_SJIS_ODD_ROW), "big")
    shift_jis = bytearray(len(pairs))
    shift_jis[0::2] = rows.translate(_SJIS_LEAD)
    shift_jis[1::2] = marked.to_bytes(len(cells), "big").translate(_SJIS_TRAIL)
    try:
        return bytes(shift_jis).decode("cp932") + tail
    except UnicodeDecodeError:
        return None


_JP_RUNS = {
    b"(B": _jp_ascii,
    b"(J": _jp_roman,
    b"(I": _jp_katakana,
    b"$@": _jp_double,
    b"$B": _jp_double,
}

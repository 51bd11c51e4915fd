"""Bytes to text when the declared charset is missing, unknown, wrong, or narrower than what the
sender's mailer really wrote."""

from __future__ import annotations

import pytest

from mailgate.inbound.charsets import decode_bytes, decode_iso2022jp

# "①１都３県の鯵と、" as Japanese Windows and mobile mailers send it: ISO-2022-JP whose JIS X 0208
# run holds an NEC row 13 sign (① is row 13, cell 1: 0x2D 0x21).
NEC_ROW_13 = b'\x1b$B-!#1ET#38)$N03$H!"\x1b(B\n'


def test_iso2022jp_with_nec_row_13_signs_is_read_as_mailers_mean_it() -> None:
    text, note = decode_bytes(NEC_ROW_13, "ISO-2022-JP")
    assert text == "①１都３県の鯵と、\n"
    assert note is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x1b$B-4-_-j\x1b(B", "⑳㍻㈱"),  # more NEC row 13: circled 20, era Heisei, (株)
        (b"\x1b$B|b\x1b(B", "髙"),  # IBM extension row 92: the "ladder" taka of family names
        (b"\x1b(I12\x1b(B", "ｱｲ"),  # half-width katakana (ESC ( I)
        (b"\x1b(J\\~\x1b(B", "¥‾"),  # JIS X 0201 Roman: yen sign and overline
        (b"\x1b$@F|K\\\x1b(B", "日本"),  # the 1978 designation ESC $ @
        (b"\x1b$B-!\nnext", "①\nnext"),  # a newline before ESC ( B returns to ASCII
    ],
)
def test_iso2022jp_sets_and_extensions(raw: bytes, expected: str) -> None:
    assert decode_bytes(raw, "iso-2022-jp")[0] == expected


def test_plain_iso2022jp_reads_exactly_as_the_standard_codec() -> None:
    text = "お問い合わせありがとうございます。\n明日（金）に回答します。"
    raw = text.encode("iso2022_jp")
    assert decode_bytes(raw, "ISO-2022-JP") == (text, None)


def test_microsofts_label_for_iso2022jp_is_known() -> None:
    assert decode_bytes(NEC_ROW_13, "CP50221")[0] == "①１都３県の鯵と、\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x1b$B-\x1b(B",  # half a pair
        b"\x1b$(D\x21\x21\x1b(B",  # JIS X 0212, which no Windows table holds
        b"\x1b$B\x21\x21\x0e\x1b(B",  # SO inside a run
        "①".encode("cp932"),  # Shift_JIS bytes under the ISO-2022-JP label
    ],
)
def test_what_is_not_iso2022jp_is_refused_by_the_wide_reader(raw: bytes) -> None:
    assert decode_iso2022jp(raw) is None


def test_broken_iso2022jp_gives_replacement_marks_not_escape_sequences() -> None:
    text, note = decode_bytes(b"abc\x1b$B-\x1b(B", "iso-2022-jp")
    assert text.startswith("abc")
    assert "\x1b" not in text
    assert note is not None


def test_jis_x_0212_under_the_plain_label_is_read_with_iso2022jp_2() -> None:
    assert decode_bytes(b"\x1b$(D0!\x1b(B", "iso-2022-jp") == ("丂", None)


def test_shift_jis_sent_under_the_iso2022jp_label_is_read_as_shift_jis() -> None:
    text, note = decode_bytes("①テスト".encode("cp932"), "iso-2022-jp")
    assert text == "①テスト"
    assert note is not None


def test_a_long_iso2022jp_body_is_read_whole() -> None:
    line = NEC_ROW_13 * 50_000  # 1.4 MB: decoded by table lookups over the whole run
    text, note = decode_bytes(line, "iso-2022-jp")
    assert note is None
    assert text == "①１都３県の鯵と、\n" * 50_000


@pytest.mark.parametrize(
    ("raw", "declared", "expected", "fell_back"),
    [
        ("café".encode(), "iso-8859-1", "café", True),  # declared Latin-1, holds UTF-8
        ("“quoted” €5".encode("cp1252"), "iso-8859-1", "“quoted” €5", False),
        ("Grüße".encode("cp1252"), None, "Grüße", True),
        ("Grüße".encode(), "x-unknown", "Grüße", True),
        ("中文".encode("gb18030"), "gb2312", "中文", False),
    ],
)
def test_declared_charsets_read_as_their_supersets_or_corrected(
    raw: bytes, declared: str | None, expected: str, fell_back: bool
) -> None:
    text, note = decode_bytes(raw, declared)
    assert text == expected
    assert (note is not None) == fell_back


@pytest.mark.parametrize(
    "label", ["punycode", "idna", "unicode_escape", "raw-unicode-escape", "undefined", "charmap"]
)
def test_python_codecs_that_are_no_charset_are_an_unknown_charset(label: str) -> None:
    # Python's punycode decoder takes time growing with the square of its input (1 MB: 12 s);
    # the others turn escapes or labels into other text, or raise. No mailer writes them.
    data = b"a-" + b"b" * 100_000 + b"\\u0041"
    text, note = decode_bytes(data, label)
    assert text == data.decode("ascii")
    assert note is None
    text, note = decode_bytes(b"caf\xc3\xa9", label)
    assert (text, note) == ("café", f"unknown charset {label!r}; read as utf-8")

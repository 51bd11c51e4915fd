"""Content-Type and Content-Disposition parameters (RFC 2045 §5.1, RFC 2231) read in one pass,
with what is over the limits left out and said so."""

from __future__ import annotations

import pytest

from mailgate.inbound.parameters import (
    MAX_PARAMETER_VALUE,
    MAX_PARAMETERS,
    MAX_VALUE,
    canonical_content_type,
    canonical_disposition,
    parse_parameters,
)


@pytest.mark.parametrize(
    ("value", "kind", "params"),
    [
        (
            'text/plain; charset="utf-8"; format=flowed',
            "text/plain",
            {"charset": "utf-8", "format": "flowed"},
        ),
        ("Text / HTML ; (a comment) Charset=UTF-8 (trailing)", "text/html", {"charset": "UTF-8"}),
        ('multipart/mixed; boundary="=_a;b(c)"', "multipart/mixed", {"boundary": "=_a;b(c)"}),
        ('attachment; filename="a\\"b\\\\c.txt"', "attachment", {"filename": 'a"b\\c.txt'}),
        ("attachment; filename=report 2024.pdf", "attachment", {"filename": "report 2024.pdf"}),
        ('inline; filename="never closed', "inline", {"filename": "never closed"}),
        ("attachment;;; junk; =x; filename=a.txt", "attachment", {"filename": "a.txt"}),
        (
            'attachment; filename="first.txt"; filename="second.txt"',
            "attachment",
            {"filename": "first.txt"},
        ),
        ("", "", {}),
    ],
)
def test_parameters(value: str, kind: str, params: dict[str, str]) -> None:
    parsed = parse_parameters(value)
    assert (parsed.kind, dict(parsed.params), parsed.notes) == (kind, params, ())


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("attachment; filename*=iso-8859-1'de'%E4rger.txt", "ärger.txt"),
        ("attachment; filename*=UTF-8''%E3%81%82.pdf", "あ.pdf"),
        # Continuations, in any order, some encoded and some not (RFC 2231 §4.1).
        ("attachment; filename*1=.pdf; filename*0*=utf-8''%E3%81%82", "あ.pdf"),
        # The extended form wins over the plain one Outlook writes beside it.
        ("attachment; filename=\"fallback.pdf\"; filename*=utf-8''r%C3%A9el.pdf", "réel.pdf"),
        ("attachment; filename*=unknown-charset''%C3%A9.txt", "é.txt"),
        ("attachment; filename*=no-apostrophes%41.txt", "no-apostrophesA.txt"),
    ],
)
def test_rfc2231_values(value: str, name: str) -> None:
    assert parse_parameters(value).params["filename"] == name


def test_a_ten_megabyte_parameter_is_cut_and_noted() -> None:
    parsed = parse_parameters('attachment; filename="' + "A" * 10_000_000 + '"')
    assert parsed.params["filename"] == "A" * MAX_PARAMETER_VALUE
    assert parsed.notes == (
        f"value longer than {MAX_VALUE} characters; the rest was ignored",
        f"parameter 'filename' longer than {MAX_PARAMETER_VALUE} characters; cut",
    )


def test_parameters_past_the_count_are_ignored_and_noted() -> None:
    value = "text/plain" + "".join(f"; p{n}=v" for n in range(MAX_PARAMETERS + 50))
    parsed = parse_parameters(value)
    assert len(parsed.params) == MAX_PARAMETERS
    assert f"more than {MAX_PARAMETERS} parameters; the rest were ignored" in parsed.notes


@pytest.mark.parametrize(
    "value",
    [
        "attachment; " + ";" * 1_000_000,
        'attachment; a="' + '";"' * 300_000,
        "attachment; filename=" + "(" * 1_000_000,
        'attachment; filename="' + "\\" * 1_000_000 + '"',
        "attachment" + "; name*0*=%41" * 100_000,
    ],
)
def test_hostile_values_read_in_one_pass(value: str) -> None:
    parsed = parse_parameters(value)
    assert parsed.kind == "attachment"
    assert parsed.notes  # what was left out is said
    assert all(len(found) <= MAX_PARAMETER_VALUE for found in parsed.params.values())


def test_the_canonical_values_keep_what_the_stdlib_reads() -> None:
    value = 'Multipart/Alternative; name="x.txt"; charset=utf-8; boundary="q\\"uote"'
    assert (
        canonical_content_type(value)
        == 'multipart/alternative; boundary="q\\"uote"; charset="utf-8"'
    )
    assert canonical_disposition("Attachment (why); filename=x") == "attachment"
    assert canonical_disposition('"attachment"') == ""

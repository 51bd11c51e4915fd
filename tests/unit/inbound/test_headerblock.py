"""The top-level header block: mended as mature readers mend it (bare CR, lost folding white
space, a forwarding tool's first line), and bounded (fields, bytes per field, bytes in all)."""

from __future__ import annotations

import tracemalloc

import pytest

from mailgate.inbound.headerblock import MAX_BLOCK, MAX_FIELD, MAX_FIELDS, bound_header_block


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n",
        b"From: a@x.test\nSubject: folded\n  over lines\n\nbody",
        b"From a@x.test Mon Jan  6 10:00:00 2025\nFrom: a@x.test\n\nmbox envelope line",
        b"This is not an email at all.\n\nJust text.",
        b"Subject: no blank line\nthe body starts here\nNote: not a header\n",
        b"Subject: only CR line ends\rFrom: a@x.test\r\rbody",
        b"",
    ],
)
def test_ordinary_blocks_are_left_as_they_are(raw: bytes) -> None:
    assert bound_header_block(raw) == (raw, [])


def test_unindented_continuation_lines_are_joined_to_their_field() -> None:
    raw = (
        b"Received: from a.example (1.1.1.1)\r\n"
        b"by b.example with SMTP; 5 Apr 2017 07:45:30 -0000\r\n"
        b"X-Token: H4sIAAAAAAAAA+NgFlrIKsWRWlGSWpSXmKPExsWi75nTrTtrwZM\r\n"
        b"Ig5drOCwmrVzP5sDoseXbDeYAxijWzLyk/IoE1owFz6ezFkxKrWjafpWpgfFOchcjF4eQwDZG\r\n"
        b"From: Karoline <k@example.com>\r\nSubject: AW: One Net Business\r\n\r\nbody\r\n"
    )
    mended, notes = bound_header_block(raw)
    assert mended == (
        b"Received: from a.example (1.1.1.1)\r\n"
        b" by b.example with SMTP; 5 Apr 2017 07:45:30 -0000\r\n"
        b"X-Token: H4sIAAAAAAAAA+NgFlrIKsWRWlGSWpSXmKPExsWi75nTrTtrwZM\r\n"
        b" Ig5drOCwmrVzP5sDoseXbDeYAxijWzLyk/IoE1owFz6ezFkxKrWjafpWpgfFOchcjF4eQwDZG\r\n"
        b"From: Karoline <k@example.com>\r\nSubject: AW: One Net Business\r\n\r\nbody\r\n"
    )
    assert notes == ["header lines without their leading white space were read as continued"]


def test_text_before_the_first_field_is_dropped() -> None:
    raw = b"---- Original email message ----\r\nSubject: Contact\r\nFrom: x@y.test\r\n\r\nb"
    assert bound_header_block(raw) == (
        b"Subject: Contact\r\nFrom: x@y.test\r\n\r\nb",
        ["text before the first header field was ignored"],
    )


def test_a_bare_cr_is_a_space_not_a_line_end() -> None:
    raw = b"Subject: hi\rBcc: victim@x.test\nFrom: a@x.test\n\nbody\rwith a CR"
    assert bound_header_block(raw) == (
        b"Subject: hi Bcc: victim@x.test\nFrom: a@x.test\n\nbody\rwith a CR",
        ["a bare CR in the header was read as a space"],
    )


def test_odd_lines_after_the_last_well_known_field_start_the_body() -> None:
    raw = b"---- junk\nFrom: a@x.test\nX-Custom: y\nHello there,\nNote: call me\n\nBye"
    mended, _ = bound_header_block(raw)
    assert mended == b"From: a@x.test\nX-Custom: y\nHello there,\nNote: call me\n\nBye"


def test_fields_past_the_count_are_left_out() -> None:
    raw = b"From: a@x.test\n" + b"X-A: b\n" * 100_000 + b"Subject: lost\n\nbody"
    mended, notes = bound_header_block(raw)
    assert mended == b"From: a@x.test\n" + b"X-A: b\n" * (MAX_FIELDS - 1) + b"\nbody"
    assert notes == [f"more than {MAX_FIELDS} header fields; the rest were ignored"]


def test_a_long_field_is_cut_at_white_space() -> None:
    raw = b"Subject: " + b"word " * 1_000_000 + b"\r\nFrom: a@x.test\r\n\r\nbody"
    mended, notes = bound_header_block(raw)
    subject, rest = mended.split(b"\r\n", 1)
    assert len(subject) < MAX_FIELD and subject.endswith(b"word")
    assert rest == b"From: a@x.test\r\n\r\nbody"
    assert notes == [f"the Subject header is longer than {MAX_FIELD} bytes; it was cut"]


def test_a_long_address_field_is_cut_after_a_comma() -> None:
    cc = b", ".join(b"person%d@example.com" % n for n in range(10_000))
    mended, _ = bound_header_block(b"Cc: " + cc + b"\n\nbody")
    field = mended.split(b"\n", 1)[0]
    assert field.endswith(b",") and len(field) < MAX_FIELD
    assert cc.startswith(field[4:])


def test_a_long_field_is_never_cut_inside_a_utf8_character() -> None:
    raw = b"Subject: " + "é".encode() * MAX_FIELD + b"\n\nbody"
    field = bound_header_block(raw)[0].split(b"\n", 1)[0]
    value = field.decode("utf-8")  # raises on half a character
    assert len(field) < MAX_FIELD and value == "Subject: " + "é" * (len(value) - len("Subject: "))


def test_the_block_is_bounded_in_all() -> None:
    field = b"X-Big: " + b"y" * (MAX_FIELD - 100) + b"\n"
    raw = field * 20 + b"\nbody"
    mended, notes = bound_header_block(raw)
    assert len(mended) <= MAX_BLOCK + len(b"\nbody")
    assert notes == [f"the header is longer than {MAX_BLOCK} bytes; the rest was ignored"]


@pytest.mark.parametrize(
    "field",
    [
        b"Subject: " + b"x\r" * 5_000_000,  # bare CRs: one piece each for a substitution
        b"X-Many: y\r\n" + b" y\r\n" * 2_500_000,  # continuation lines: one object each
    ],
    ids=["bare CRs", "continuation lines"],
)
def test_a_ten_megabyte_header_is_read_in_memory_bounded_by_the_block(field: bytes) -> None:
    # What lies past the limits is never kept, so it is never split up either: a copy or two of
    # the header, and what is kept (10 MB of bare CRs took 900 MB as pieces, of continuation
    # lines 350 MB as lines).
    raw = b"From: a@b.test\r\n" + field + b"\r\n\r\nbody"
    tracemalloc.start()
    try:
        mended, notes = bound_header_block(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(raw) + 4 * MAX_BLOCK
    assert mended.startswith(b"From: a@b.test\r\n") and mended.endswith(b"\r\n\r\nbody")
    assert len(mended) <= MAX_BLOCK + len(b"\r\nbody")
    assert any("longer than" in note for note in notes)


def test_a_header_with_cr_line_ends_only_is_bounded_like_any() -> None:
    # The stdlib reads lone CRs as line ends when there is no LF at all (classic Mac OS files).
    raw = b"From: a@x.test\r" + b"X-A: b\r" * 100_000 + b"Subject: lost\r\rbody\rmore"
    mended, notes = bound_header_block(raw)
    assert mended == b"From: a@x.test\n" + b"X-A: b\n" * (MAX_FIELDS - 1) + b"\nbody\rmore"
    assert notes == [f"more than {MAX_FIELDS} header fields; the rest were ignored"]

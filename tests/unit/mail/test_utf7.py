"""Modified UTF-7 (RFC 3501 §5.1.3): the RFC's own examples, the strictness of decoding, and
round trips over any text."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailgate.mail import utf7

# Text as an admin could type it: any code point but the surrogates (not text on their own).
TEXT = st.text(st.characters(blacklist_categories=["Cs"]))


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        # RFC 3501 §5.1.3's example: "~peter/mail/台北/日本語".
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("&", "&-"),
        ("A&B", "A&-B"),
        ("Anfragen.Bestätigt", "Anfragen.Best&AOQ-tigt"),
        ("受信トレイ.処理済み", "&U9dP4TDIMOwwpA-.&UeZ0Bm4IMH8-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Ärger & Öl", "&AMQ-rger &- &ANY-l"),
        ("INBOX", "INBOX"),
        ("", ""),
        ("😀", "&2D3eAA-"),  # beyond the BMP: a UTF-16 surrogate pair
        ("ä\tb", "&AOQACQ-b"),  # a control character is encoded, as anything not printable
    ],
)
def test_encode_and_decode(name: str, encoded: str) -> None:
    assert utf7.encode(name) == encoded
    assert utf7.decode(encoded) == name


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        ("&Jjo!", "no closing -"),  # RFC 3501's example of an illegal name
        ("&U,BTFw-&ZeVnLIqe-", "side by side"),  # RFC 3501: must be "&U,BTF2XlZyyKng-"
        ("&AGE-", "printable ASCII"),  # "a" must represent itself
        ("&ACY-", "printable ASCII"),  # "&" must be "&-"
        ("&AOR-", "bits over"),  # ä is &AOQ-: the last digit's spare bits are not zero
        ("&AOQA-", "odd number of bytes"),  # ä and half of a second character
        ("&2D0-", "lone surrogate"),
        ("&3gA-", "lone surrogate"),
        ("&AOQ=-", "not modified BASE64"),  # no padding
        ("&AO/k-", "not modified BASE64"),  # "/" is written ","
        ("Bestätigt", "must be encoded"),  # raw 8-bit: UTF-8 sent without UTF8=ACCEPT
        ("a\nb", "must be encoded"),
        ("&A-", "not modified BASE64"),
    ],
)
def test_decoding_is_strict(encoded: str, why: str) -> None:
    with pytest.raises(utf7.NotModifiedUtf7, match=why):
        utf7.decode(encoded)


def test_a_name_that_is_not_modified_utf7_is_shown_escaped() -> None:
    assert utf7.shown("Best&AOQ-tigt") == "Bestätigt"
    assert utf7.shown("&Jjo!") == "&Jjo!"  # as sent: it is printable
    assert utf7.shown("Bestätigt") == "Best\\xe4tigt"
    assert utf7.shown("a\nb\x00") == "a\\nb\\x00"
    assert utf7.shown("&2D0-") == "&2D0-"


@given(TEXT)
@example("&-&AOQ-")
@example("\U0010ffff")
def test_any_text_round_trips(name: str) -> None:
    encoded = utf7.encode(name)
    assert encoded.isascii() and encoded.isprintable()
    assert utf7.decode(encoded) == name


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
@example("&AOQ-&APY-")
@example("&AOQA9g-")
def test_what_decodes_has_one_encoded_form(encoded: str) -> None:
    """Strict decoding: every name the decoder accepts is the encoder's own output, so one folder
    never has two spellings."""
    try:
        name = utf7.decode(encoded)
    except utf7.NotModifiedUtf7:
        return
    assert utf7.encode(name) == encoded


@given(st.text())
@example("&AAoACQ-")
def test_shown_never_fails_and_holds_no_control_character(received: str) -> None:
    assert not any(c < " " or "\x7f" <= c <= "\x9f" for c in utf7.shown(received))


def test_control_characters_of_a_valid_name_are_shown_escaped() -> None:
    assert utf7.shown("a&AAoACQ-b") == "a\\n\\tb"


def test_text_with_a_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        utf7.encode("Best\udce4tigt")  # what Python makes of an undecodable byte


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Anfragen\n", "control character \\n"),
        ("a\x7fb", "control character \\x7f"),
        ("a\x85b", "control character \\x85"),
        ("Best\udce4tigt", "surrogate"),
    ],
)
def test_names_no_server_has_are_refused(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("\\", "\\\\")):
        utf7.check_name(name)


def test_ordinary_names_pass_the_check() -> None:
    for name in ("INBOX", "Anfragen.Bestätigt", "受信トレイ/処理済み", "A&B", "[Gmail]/All Mail"):
        utf7.check_name(name)


def test_a_name_given_in_its_encoded_form_is_recognised() -> None:
    assert utf7.encoded_form_of("Anfragen.Best&AOQ-tigt") == "Anfragen.Bestätigt"
    assert utf7.encoded_form_of("A&-B") is None  # "A&-B" could be meant as typed
    assert utf7.encoded_form_of("A&B") is None
    assert utf7.encoded_form_of("Anfragen.Bestätigt") is None
    assert utf7.encoded_form_of("&AGE-") is None  # not valid: not an encoded form

"""The SMTP envelope: international domains as IDNA, SMTPUTF8 only when a local part or the
headers need it, and a message no server without SMTPUTF8 can take refused before it is sent."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

import pytest

from mailgate.mail.envelope import Envelope, Undeliverable, prepare

SENDER = "help@example.test"


def raw(to: str, *, utf8_headers: bool = False) -> bytes:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = "Grüße"
    message.set_content("Hallo")
    return message.as_bytes(policy=SMTPUTF8 if utf8_headers else SMTP)


@pytest.mark.parametrize("offered", [True, False])
def test_ascii_mail_needs_nothing(offered: bool) -> None:
    to = "kunde@example.net"
    assert prepare(SENDER, [to], raw(to), server_offers_smtputf8=offered) == Envelope(
        SENDER, [to], smtputf8=False
    )


@pytest.mark.parametrize("offered", [True, False])
def test_an_international_domain_goes_as_idna_without_smtputf8(offered: bool) -> None:
    to = "kunde@bücher.example"
    envelope = prepare(SENDER, [to], raw(to), server_offers_smtputf8=offered)
    assert envelope == Envelope(SENDER, ["kunde@xn--bcher-kva.example"], smtputf8=False)


def test_idna_2008_not_2003() -> None:
    # IDNA 2003 (Python's "idna" codec) maps ß to ss: another domain.
    envelope = prepare(SENDER, ["a@faß.de"], raw("a@example.net"), server_offers_smtputf8=False)
    assert envelope.recipients == ["a@xn--fa-hia.de"]


def test_a_non_ascii_local_part_is_sent_with_smtputf8_when_offered() -> None:
    to = "jürgen@bücher.example"
    envelope = prepare(SENDER, [to], raw(to), server_offers_smtputf8=True)
    assert envelope == Envelope(SENDER, ["jürgen@xn--bcher-kva.example"], smtputf8=True)


def test_a_non_ascii_local_part_is_undeliverable_without_smtputf8() -> None:
    to = "jürgen@example.net"
    with pytest.raises(Undeliverable) as refused:
        prepare(SENDER, ["kunde@example.net", to], raw(to), server_offers_smtputf8=False)
    assert refused.value.kind == "smtputf8"
    assert str(refused.value) == (
        "the SMTP server does not accept non-ASCII addresses (SMTPUTF8): jürgen@example.net "
        "has a non-ASCII local part"
    )


def test_a_non_ascii_sender_needs_smtputf8_too() -> None:
    with pytest.raises(Undeliverable, match=r"büro@example\.test has a non-ASCII local part"):
        prepare(
            "büro@example.test",
            ["a@example.net"],
            raw("a@example.net"),
            server_offers_smtputf8=False,
        )
    sent = prepare(
        "büro@example.test", ["a@example.net"], raw("a@example.net"), server_offers_smtputf8=True
    )
    assert sent.smtputf8


def test_utf8_headers_need_smtputf8() -> None:
    message = raw("a@example.net", utf8_headers=True)
    assert b"Gr\xc3\xbc\xc3\x9fe" in message  # the Subject, in UTF-8 (RFC 6532)
    with pytest.raises(Undeliverable, match="its headers are not ASCII"):
        prepare(SENDER, ["a@example.net"], message, server_offers_smtputf8=False)
    assert prepare(SENDER, ["a@example.net"], message, server_offers_smtputf8=True).smtputf8


def test_an_8bit_body_is_not_a_header() -> None:
    message = raw("a@example.net").replace(b"Hallo", "Grüße".encode())
    assert not prepare(SENDER, ["a@example.net"], message, server_offers_smtputf8=False).smtputf8


def test_a_domain_that_is_not_valid_idna_is_undeliverable_everywhere() -> None:
    for offered in (True, False):
        with pytest.raises(Undeliverable) as refused:
            prepare(
                SENDER, ["a@-bücher-.example"], raw("a@example.net"), server_offers_smtputf8=offered
            )
        assert refused.value.kind == "address"
        assert "the domain of a@-bücher-.example is not a valid international domain name" in str(
            refused.value
        )

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.mail.sasl import (
    OAUTHBEARER,
    XOAUTH2,
    NoOAuthMechanism,
    choose_mechanism,
    error_reply,
    oauthbearer,
    parse_error_challenge,
    xoauth2,
)


def test_xoauth2_string() -> None:
    # developers.google.com/gmail/imap/xoauth2-protocol
    assert xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg") == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
        b"\x01\x01"
    )


def test_oauthbearer_string_rfc7628_example() -> None:
    # RFC 7628 §4.1
    assert oauthbearer(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143
    ) == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_escapes_the_authzid() -> None:
    assert oauthbearer("a,b=c", "t", "h", 1).startswith(b"n,a=a=2Cb=3Dc,\x01")


def test_error_challenge_is_decoded() -> None:
    payload = base64.b64encode(
        json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"}).encode()
    ).decode()
    challenge = parse_error_challenge(payload)
    assert challenge is not None
    assert (challenge.status, challenge.schemes, challenge.scope) == ("401", "bearer", "mail")


@given(st.text())
def test_anything_else_is_not_a_challenge(text: str) -> None:
    parsed = parse_error_challenge(text)
    assert parsed is None or isinstance(parsed.raw, str)


def test_error_replies() -> None:
    assert error_reply(XOAUTH2) == b""
    assert error_reply(OAUTHBEARER) == b"\x01"


def test_mechanism_choice() -> None:
    assert choose_mechanism({"PLAIN", "XOAUTH2", "OAUTHBEARER"}) == OAUTHBEARER
    assert choose_mechanism({"xoauth2"}) == XOAUTH2
    assert choose_mechanism({"XOAUTH2", "OAUTHBEARER"}, preferred="xoauth2") == XOAUTH2
    with pytest.raises(NoOAuthMechanism, match="PLAIN"):
        choose_mechanism({"PLAIN", "LOGIN"})

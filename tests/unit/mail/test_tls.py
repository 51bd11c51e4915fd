"""One TLS context for IMAP, POP3 and SMTP: verification always on, a private CA added, and a CA
file that cannot be used said so — the same way for every protocol."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailgate.mail import smtp
from mailgate.mail.tls import CaFileUnusable, tls_context_for, tls_failure_kind


@dataclass
class Server:
    ca_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 1
    security: str = "starttls"


def test_verification_is_always_on() -> None:
    context = tls_context_for(Server())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_a_ca_file_that_cannot_be_used_is_said_so(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CaFileUnusable) as unusable:
        tls_context_for(Server(ca_file=str(path)))
    assert str(path) in str(unusable.value) and "--ca-file" in str(unusable.value)


async def test_smtp_reports_it_at_the_tls_step(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pem"
    with pytest.raises(smtp.SmtpFailure) as failed:
        async with smtp.connected(Server(ca_file=str(missing))):  # type: ignore[arg-type]
            pass
    assert (failed.value.step, failed.value.kind) == ("tls", "certificate")
    assert str(failed.value).startswith(f"tls: the CA file {missing} cannot be used (")
    assert failed.value.waits_for_admin


def _wrapped(cause: BaseException) -> BaseException:
    """`cause` as a client library passes it on: inside an error of its own."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise ConnectionError("Error connecting to mail.example.com on port 465") from exc
    except ConnectionError as wrapper:
        return wrapper


def _verification(code: int) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_code = code
    return error


def test_what_went_wrong_in_the_handshake_is_read_from_the_error() -> None:
    assert tls_failure_kind(_wrapped(_verification(62))) == "hostname"  # HOSTNAME_MISMATCH
    assert tls_failure_kind(_wrapped(_verification(64))) == "hostname"  # IP_ADDRESS_MISMATCH
    assert tls_failure_kind(_verification(20)) == "certificate"  # UNABLE_TO_GET_ISSUER_CERT
    assert tls_failure_kind(_wrapped(ssl.SSLError(1, "WRONG_VERSION_NUMBER"))) == "handshake"
    assert tls_failure_kind(_wrapped(ConnectionRefusedError())) is None

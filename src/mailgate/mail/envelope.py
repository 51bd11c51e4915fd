"""The SMTP envelope of a message, and whether it needs SMTPUTF8 (RFC 6531). Pure.

A domain that is not ASCII is sent as IDNA A-labels (`bücher.example` → `xn--bcher-kva.example`,
RFC 5890/5891, with UTS #46 mapping): every server takes those, so it needs no extension. What
does need SMTPUTF8 is a local part that is not ASCII (`jürgen@…`) or a header section holding
UTF-8 (RFC 6532). Such a message sent to a server that does not offer SMTPUTF8 can never go
through it, however often it is tried: `prepare` raises `Undeliverable` before anything is sent,
and the outbox marks the message dead at once with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import idna

__all__ = ["Envelope", "Undeliverable", "needs_smtputf8", "prepare"]


class Undeliverable(ValueError):
    """No attempt can send this message through this server. `kind`: "smtputf8" (it needs
    SMTPUTF8, which the server does not offer) or "address" (an address no server can take)."""

    def __init__(self, kind: Literal["smtputf8", "address"], text: str) -> None:
        super().__init__(text)
        self.kind = kind


@dataclass(frozen=True)
class Envelope:
    """MAIL FROM and RCPT TO as sent; `smtputf8`: MAIL FROM carries the SMTPUTF8 parameter."""

    sender: str
    recipients: list[str]
    smtputf8: bool


def _ascii_domain(address: str) -> str:
    """`address` with its domain as IDNA A-labels (unchanged when it is ASCII already)."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as exc:
        raise Undeliverable(
            "address", f"the domain of {address} is not a valid international domain name ({exc})"
        ) from None


def _header_section(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[:end]


def needs_smtputf8(addresses: Sequence[str], raw: bytes) -> str | None:
    """Why a message needs SMTPUTF8 ("jürgen@example.net has a non-ASCII local part", "its
    headers are not ASCII"), its addresses' domains already A-labels; None when it does not."""
    for address in addresses:
        if not address.isascii():
            return f"{address} has a non-ASCII local part"
    if not _header_section(raw).isascii():
        return "its headers are not ASCII"
    return None


def prepare(
    sender: str, recipients: Sequence[str], raw: bytes, *, server_offers_smtputf8: bool
) -> Envelope:
    """The envelope to send `raw` with: domains as A-labels, SMTPUTF8 when the message needs it.
    `Undeliverable` when it needs SMTPUTF8 and the server does not offer it, or an address's
    domain is not a valid international domain name."""
    sent_sender = _ascii_domain(sender)
    sent_recipients = [_ascii_domain(recipient) for recipient in recipients]
    why = needs_smtputf8([sent_sender, *sent_recipients], raw)
    if why is not None and not server_offers_smtputf8:
        raise Undeliverable(
            "smtputf8", f"the SMTP server does not accept non-ASCII addresses (SMTPUTF8): {why}"
        )
    return Envelope(sent_sender, sent_recipients, smtputf8=why is not None)

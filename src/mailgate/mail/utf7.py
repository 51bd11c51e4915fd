"""Modified UTF-7 (RFC 3501 §5.1.3): how IMAP4rev1 writes a mailbox name that is not ASCII.

The admin gives a folder as any mail client shows it (`Anfragen.Bestätigt`, `受信トレイ`, `A&B`);
the IMAP client sends the server `encode(name)` (`Anfragen.Best&AOQ-tigt`, `&U9dP4TDIMOwwpA-`,
`A&-B`) and reads every name the server sends back with `decode`, which is strict: a name that
is not modified UTF-7 as the RFC defines it raises `NotModifiedUtf7`, and `shown` turns it into
something printable instead, so a broken name from a server is displayed, never a crash.

Why not UTF-8 (RFC 6855 `ENABLE UTF8=ACCEPT`)? Every IMAP4rev1 server understands modified
UTF-7; UTF8=ACCEPT is offered by few (Dovecot 2.3, which the suite runs, does not; Exchange
Online does not) and, once enabled, changes how every name is sent and received on that
connection. One encoding that works everywhere is one path to test.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["NotModifiedUtf7", "check_name", "decode", "encode", "encoded_form_of", "shown"]

# Modified BASE64 (RFC 3501 §5.1.3): RFC 2045's alphabet with "," instead of "/", no padding.
_RUN = re.compile(r"[A-Za-z0-9+,]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls and DEL: a pasted line break, never part of a real folder's name.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class NotModifiedUtf7(ValueError):
    """A name a server sent is not valid modified UTF-7; the message says where and why."""


def _printable(character: str) -> bool:
    # "printable US-ASCII characters, except for "&", represent themselves" (0x20-0x7e).
    return " " <= character <= "~"


def encode(name: str) -> str:
    """The modified UTF-7 form of a folder name given in Unicode (only printable ASCII).

    Raises `ValueError` for a string that is not text: one holding a surrogate code point (as
    Python makes of undecodable bytes)."""
    if _SURROGATE.search(name):
        raise ValueError(f"{name!r} is not text: it holds a surrogate code point")
    out: list[str] = []
    shifted: list[str] = []

    def shift_out() -> None:
        if shifted:
            # "represented in modified BASE64 ... of the UTF-16 form", between "&" and "-"
            utf16 = "".join(shifted).encode("utf-16-be")
            run = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{run}-")
            shifted.clear()

    for character in name:
        if _printable(character):
            shift_out()
            out.append("&-" if character == "&" else character)  # "&" is represented as "&-"
        else:
            shifted.append(character)
    shift_out()
    return "".join(out)


def decode(encoded: str) -> str:
    """The Unicode name of a modified UTF-7 name; `NotModifiedUtf7` when it is not one.

    Strict, so that each Unicode name has exactly one encoded form: a raw character that is not
    printable ASCII, an "&" without its "-", base64 that is not modified BASE64, encodes an odd
    number of bytes, leaves non-zero bits over, holds a lone surrogate or a printable ASCII
    character, or two encoded runs side by side are all refused."""
    out: list[str] = []
    position = 0
    previous_run_end = -1
    while position < len(encoded):
        character = encoded[position]
        if character != "&":
            if not _printable(character):
                raise NotModifiedUtf7(
                    f"{encoded!r}: {character!r} at {position} must be encoded (after an &)"
                )
            out.append(character)
            position += 1
            continue
        end = encoded.find("-", position + 1)
        if end < 0:
            raise NotModifiedUtf7(f"{encoded!r}: the & at {position} has no closing -")
        run = encoded[position + 1 : end]
        if not run:
            out.append("&")
        else:
            if position == previous_run_end:
                # "&AOQ-&APY-" must be written "&AOQA9g-": one name, one form.
                raise NotModifiedUtf7(f"{encoded!r}: two encoded runs side by side at {position}")
            out.append(_decode_run(encoded, run, position))
            previous_run_end = end + 1
        position = end + 1
    return "".join(out)


def _decode_run(encoded: str, run: str, position: int) -> str:
    where = f"{encoded!r}: the run at {position}"
    if not _RUN.fullmatch(run):
        raise NotModifiedUtf7(f"{where} is not modified BASE64")
    standard = run.replace(",", "/")
    try:
        utf16 = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise NotModifiedUtf7(f"{where} is not modified BASE64") from None
    # Re-encoding gives the run back only when its unused low bits are zero and nothing is over.
    if base64.b64encode(utf16).decode("ascii").rstrip("=") != standard:
        raise NotModifiedUtf7(f"{where} leaves bits over")
    if len(utf16) % 2:
        raise NotModifiedUtf7(f"{where} is not UTF-16 (an odd number of bytes)")
    try:
        text = utf16.decode("utf-16-be")
    except UnicodeDecodeError:
        raise NotModifiedUtf7(f"{where} holds a lone surrogate") from None
    if any(_printable(character) for character in text):
        raise NotModifiedUtf7(f"{where} encodes printable ASCII, which represents itself")
    return text


def check_name(name: str) -> None:
    """Refuse a folder name given by the admin that no server has: one holding a control
    character or a surrogate code point (`ValueError`, its message says which)."""
    if match := _CONTROL.search(name):
        raise ValueError(f"it holds the control character {ascii(match.group())[1:-1]}")
    if _SURROGATE.search(name):
        raise ValueError("it is not text (it holds a surrogate code point)")


def encoded_form_of(name: str) -> str | None:
    """The Unicode name when `name` is itself modified UTF-7 with at least one encoded run
    ("Best&AOQ-tigt" → "Bestätigt"): the admin copied what a server or a log shows, and mailgate
    would encode it again. None otherwise."""
    if not re.search(r"&[A-Za-z0-9+,]+-", name):
        return None
    try:
        return decode(name)
    except NotModifiedUtf7:
        return None


def shown(encoded: str) -> str:
    """A name a server sent, for the admin to read: decoded when it is valid modified UTF-7,
    else as sent with every character that is not printable ASCII escaped (`\\xe4`); either
    way with control characters escaped (`\\n`), so it prints on one line."""
    try:
        return _CONTROL.sub(_escaped, decode(encoded))
    except NotModifiedUtf7:
        return re.sub(r"[^ -~]", _escaped, encoded)


def _escaped(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]

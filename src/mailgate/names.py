"""The names an admin gives integrations, mailboxes and SMTP servers: short, safe in a URL and a
log line, and never a word the pages use for themselves (`/mailboxes/new` is the add form)."""

from __future__ import annotations

import re

from mailgate.errors import BadInput

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RESERVED = frozenset({"new"})


def check_name(kind: str, name: str) -> str:
    """`name` if it is valid for a `kind` ("Mailbox", "SMTP server" …), else BadInput."""
    if not NAME_RE.fullmatch(name):
        raise BadInput(
            f"{kind} name {name!r} is not valid: use letters, digits, '.', '_' and '-' "
            "(at most 100 characters), starting with a letter or digit."
        )
    if name.lower() in RESERVED:
        raise BadInput(f"{kind} name {name!r} is reserved for the web pages: choose another.")
    return name

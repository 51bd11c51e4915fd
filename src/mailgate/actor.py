"""Who is acting, for the audit log: set once where a request or a command enters (a signed-in
user's email and address, `cli:LOGIN` for a command), read where the change is recorded, so
service functions need no extra parameter to say who called them."""

from __future__ import annotations

import getpass
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    name: str  # a user's email, `cli:LOGIN`, `system`
    address: str | None = None  # the client's address, for web requests


SYSTEM = Actor("system")
_current: ContextVar[Actor] = ContextVar("mailgate_actor", default=SYSTEM)


def current() -> Actor:
    return _current.get()


def act_as(actor: Actor) -> None:
    """Set who acts for the rest of this task (a request, a command)."""
    _current.set(actor)


def command_line() -> Actor:
    """The person at the command line, by their login name."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        login = "unknown"
    return Actor(f"cli:{login}")

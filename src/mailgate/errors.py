"""The errors mailgate raises, by who has to act.

    MailgateError                 anything mailgate reports on purpose; its message is one plain
    │                             sentence that says what is wrong and what to do
    ├── BadInput                  the user's input is wrong: nothing was stored (CLI exit 2)
    │   └── NotFound              a named object does not exist
    ├── OperationFailed           a requested operation did not succeed (CLI exit 1)
    │   └── MailError             a mail server refused (mailgate.mail.errors: the rule for a
    │       │                     temporary failure; each protocol's refusals derive from it)
    │       └── TokenRefused      the server refused an access token a refresh may cure
    ├── Transient                 worth retrying with backoff: network errors, 5xx, timeouts
    │   └── DatabaseBusy          another process held the database's write lock too long
    └── NeedsAdmin                retrying won't help until someone acts
        ├── NeedsReauthorization  the provider refused the grant: sign the account in again
        ├── ClientRejected        the provider refused the client (secret expired or wrong)
        └── DatabaseDamaged       the database file is not a readable database: restore it

Messages never carry a secret: they are written for a log line and a terminal.
"""

from __future__ import annotations


class MailgateError(Exception):
    """Base of every error mailgate raises on purpose."""

    exit_code = 1


class BadInput(MailgateError):
    """The input is wrong; nothing was stored."""

    exit_code = 2


class NotFound(BadInput):
    """A named object (integration, credential, ...) does not exist."""


class OperationFailed(MailgateError):
    """The operation was carried out and failed (a test connection that fails)."""


class Transient(MailgateError):
    """A failure worth retrying with backoff."""


class DatabaseBusy(Transient):
    """Another process held SQLite's write lock for longer than a writer waits its turn."""


class NeedsAdmin(MailgateError):
    """A failure that needs someone to act before a retry can succeed."""


class NeedsReauthorization(NeedsAdmin):
    """The provider refused the grant; the account must be signed in again."""


class ClientRejected(NeedsAdmin):
    """The provider refused the client's authentication (e.g. an expired secret)."""


class DatabaseDamaged(NeedsAdmin):
    """The database file is damaged or is no database at all; only a backup brings it back."""

"""The mark on every message mailgate sends (notifications, alerts, forwards, test messages):
a header by which `inbound.classify` knows its own mail when it comes back, so that a
notification bounced or forwarded to a mailbox never opens an issue.

Apart from `notify` (which imports templates and the database) so that the parsing processes,
which classify, load nothing more than these two names.
"""

from __future__ import annotations

from typing import Final

DEFAULT_FINGERPRINT_HEADER: Final = "X-Mailgate-Fingerprint"
FINGERPRINT: Final = "mailgate"

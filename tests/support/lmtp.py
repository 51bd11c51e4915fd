"""Mail delivered into the test Dovecot over LMTP (RFC 2033), as an MTA delivers it: one
connection for many messages, so a test can deliver hundreds a second (`Dovecot.deliver` runs a
`doveadm` process per message). Dovecot assigns the UIDs and tells IDLE sessions at once."""

from __future__ import annotations

import smtplib

from tests.support.dovecot import Dovecot

TIMEOUT = 30.0


class LmtpDelivery:
    """Deliver raw messages to users of a running :class:`Dovecot`; reconnects after a
    failure (a restarted server). Use as a context manager, or call :meth:`close`."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self._client: smtplib.LMTP | None = None

    def deliver(self, recipient: str, raw: bytes, sender: str = "feeder@example.net") -> None:
        """One message to one user's INBOX; raises when Dovecot refuses it."""
        for attempt in range(2):
            client = self._connected()
            try:
                refused = client.sendmail(sender, [recipient], raw)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                self.close()
                if attempt:
                    raise
                continue  # an idle connection the server closed: once more on a new one
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            return

    def _connected(self) -> smtplib.LMTP:
        if self._client is None:
            client = smtplib.LMTP(self.dovecot.host, self.dovecot.lmtp_port, timeout=TIMEOUT)
            client.ehlo_or_helo_if_needed()
            self._client = client
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def __enter__(self) -> LmtpDelivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LmtpDelivery"]

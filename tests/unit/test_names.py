"""Names of integrations, mailboxes and SMTP servers: valid in a URL, never a page's own word."""

from __future__ import annotations

import pytest

from mailgate.errors import BadInput
from mailgate.inbound.mailboxes import check_name as mailbox_name
from mailgate.mail.smtp_servers import check_name as smtp_name
from mailgate.oauth.integrations import check_name as integration_name


@pytest.mark.parametrize(
    ("check", "kind"),
    [(integration_name, "Integration"), (mailbox_name, "Mailbox"), (smtp_name, "SMTP server")],
)
def test_names(check: object, kind: str) -> None:
    assert check("support-2.eu_west") == "support-2.eu_west"  # type: ignore[operator]
    for bad in ("", "-x", "a b", "x/y", "a" * 101, "<script>"):
        with pytest.raises(BadInput, match=f"^{kind} name .* is not valid"):
            check(bad)  # type: ignore[operator]
    for reserved in ("new", "New"):
        with pytest.raises(BadInput, match="is reserved for the web pages: choose another"):
            check(reserved)  # type: ignore[operator]

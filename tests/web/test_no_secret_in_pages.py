"""No page shows a secret: with a client secret, tokens and passwords set to canary values, a
crawl of every page an admin can reach (following the pages' own links, and every GET route of
the route table with real names put in) never finds one."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenResponse
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.tracker.service import add_project
from tests.support.web import PASSWORD, WebClient
from tests.web.test_route_table import _table

CANARIES = {
    "client secret": "canary-client-secret-7f3a",
    "access token": "canary-access-token-91bc",
    "refresh token": "canary-refresh-token-44de",
    "mailbox password": "canary-mailbox-password-0e5f",
    "smtp password": "canary-smtp-password-c2a8",
    "user password": PASSWORD,
}
_LINK = re.compile(r'(?:href|action)="(/[^"#]*)"')


async def _configure(ctx: Context) -> dict[str, str]:
    integration = await add_integration(
        ctx,
        "m365",
        IntegrationOptions(
            provider="microsoft",
            client_id="6731de76-14a6-49ae-97bc-6eba6914391e",
            client_secret=CANARIES["client secret"],
            tenant="contoso.example",
        ),
    )
    response = TokenResponse.from_json(
        {
            "access_token": CANARIES["access token"],
            "refresh_token": CANARIES["refresh token"],
            "expires_in": 3600,
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
            "token_type": "Bearer",
        }
    )
    credential = await store_grant(
        ctx, integration, "support@contoso.example", "authorization_code", response
    )
    await add_project(ctx, "HELP", "Help desk")
    await add_mailbox(
        ctx,
        "support",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=993,
            username="support@contoso.example",
            password=CANARIES["mailbox password"],
            project="HELP",
        ),
    )
    await add_smtp(
        ctx,
        "outgoing",
        SmtpOptions(
            host="127.0.0.1",
            port=587,
            username="support@contoso.example",
            password=CANARIES["smtp password"],
            from_address="support@contoso.example",
        ),
    )
    return {
        "name": "m365",
        "id": str(credential.id),
        "key": "HELP",
        "credential_id": str(credential.id),
    }


def _fill(template: str, names: dict[str, str]) -> str:
    """A route's path with a real object put in for each parameter."""

    def value(match: re.Match[str]) -> str:
        param = match.group(1).split(":")[0]
        if template.startswith("/mailboxes"):
            return "support"
        if template.startswith("/smtp"):
            return "outgoing"
        return names.get(param, "x")

    return re.sub(r"\{([^}]+)\}", value, template)


async def test_no_page_shows_a_secret(ctx: Context, admin: WebClient) -> None:
    names = await _configure(ctx)
    app = admin.http._transport.app  # type: ignore[attr-defined]
    start = [_fill(t, names) for m, t in _table(app) if m == "GET" and "/static" not in t]
    seen: set[str] = set()
    queue = ["/", *start]
    while queue and len(seen) < 300:
        path = queue.pop(0)
        if path in seen or path.startswith(("/static/", "/demo-idp/")):
            continue
        seen.add(path)
        answer = await admin.get(path)
        body = answer.text
        for what, canary in CANARIES.items():
            assert canary not in body, f"the {what} shows on {path}"
            assert canary not in str(answer.headers), f"the {what} is in a header of {path}"
        for link in _LINK.findall(body):
            target = urljoin(path, link)
            if urlsplit(target).netloc == "":
                queue.append(target)
    assert {"/", "/account"} <= seen
    assert len(seen) >= 5, seen

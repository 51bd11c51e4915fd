"""/api/v1/docs: the API's documentation served by mailgate, rendered from its own OpenAPI
description — every operation, grouped by tag, with its parameters, body fields and answers —
with mailgate's stylesheet and no script, for a token and for a signed-in user alike."""

from __future__ import annotations

import re

import httpx2

from tests.support.web import WebClient


async def test_the_docs_page_shows_every_operation_without_a_script(
    admin_api: httpx2.AsyncClient,
) -> None:
    spec = (await admin_api.get("/openapi.json")).json()
    page = await admin_api.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html and "//cdn" not in html
    assert '<link rel="stylesheet" href="/static/mailgate.css">' in html
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    shown = set(re.findall(r'<span class="method \w+">(\w+)</span> <code>([^<]+)</code>', html))
    assert shown == operations
    for tag in ("projects", "integrations", "credentials", "mailboxes", "quarantine", "audit"):
        assert f'<section id="tag-{tag}">' in html
    assert 'id="authenticate"' in html
    assert 'curl -H "Authorization: Bearer $MAILGATE_TOKEN" https://mailgate.test/api/v1/me' in html
    # a body's fields, with what the description says of them
    assert "<code>client_secret</code>" in html and "Write-only" in html
    assert "<code>Idempotency-Key</code>" in html  # a header parameter


async def test_a_signed_in_agent_reads_the_docs_in_the_page_shell(agent: WebClient) -> None:
    page = await agent.get("/api/v1/docs")
    assert page.status_code == 200
    assert 'href="/issues"' in page.text and "agent@example.com" in page.text  # the navigation
    assert '<script src="/static/mailgate.js" defer></script>' in page.text
    assert "<h1>mailgate API" in page.text

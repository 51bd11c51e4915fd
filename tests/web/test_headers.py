"""Every answer carries the security headers; behind a reverse proxy the client's address comes
from trusted proxies only."""

from __future__ import annotations

from dataclasses import replace

import httpx2

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.tracker.audit_log import audit_log
from mailgate.web.app import create_app
from tests.support.clock import FakeClock
from tests.support.web import WebClient


async def test_pages_and_open_routes_carry_the_security_headers(
    anonymous: WebClient, admin: WebClient
) -> None:
    for client, path in (
        (anonymous, "/login"),
        (anonymous, "/healthz"),
        (admin, "/"),
        (admin, "/account"),
    ):
        answer = await client.get(path)
        headers = answer.headers
        assert headers["strict-transport-security"].startswith("max-age="), path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] in ("same-origin", "no-referrer"), path
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "'unsafe-inline'" not in csp, path
    page = await admin.get("/")
    assert page.headers["cache-control"] == "no-store"


async def test_static_assets_are_served_by_mailgate(admin: WebClient) -> None:
    css = await admin.get("/static/mailgate.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    page = (await admin.get("/")).text
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page.replace("https://mailgate.test", "")


async def _failed_sign_in(
    settings: Settings, clock: FakeClock, peer: str, forwarded: str
) -> str | None:
    ctx = Context.open(settings, clock=clock, sleep=clock.sleep)
    try:
        transport = httpx2.ASGITransport(
            app=create_app(ctx, run_workers=False), client=(peer, 5000)
        )
        async with httpx2.AsyncClient(transport=transport, base_url=settings.base_url) as client:
            page = await client.get("/login")
            token = page.text.split('name="form_token" value="')[1].split('"')[0]
            await client.post(
                "/login",
                data={"email": "x@example.com", "password": "wrong", "form_token": token},
                headers={"X-Forwarded-For": forwarded},
            )
        return (await audit_log(ctx))[0]["address"]
    finally:
        await ctx.close()


async def test_forwarded_addresses_are_believed_from_trusted_proxies_only(
    settings: Settings, clock: FakeClock
) -> None:
    assert await _failed_sign_in(settings, clock, "10.0.0.5", "203.0.113.7") == "10.0.0.5"
    trusting = replace(settings, trusted_proxies=("10.0.0.0/8",))
    assert await _failed_sign_in(trusting, clock, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert await _failed_sign_in(trusting, clock, "192.0.2.1", "203.0.113.7") == "192.0.2.1"

"""`mailgate serve --demo`: the provider emulator mounted beside mailgate, and an integration
that uses it, so a newcomer can sign an account in without a Microsoft tenant.

The emulator keeps its state in memory: after a restart, demo credentials need signing in again.
"""

from __future__ import annotations

from fastapi import FastAPI

from mailgate.context import Context
from mailgate.errors import NotFound
from mailgate.oauth.integrations import IntegrationOptions, add_integration, get_integration
from mailgate.web.redirects import redirect_slashes_to_base_url
from mailgate_emulator import create_sign_in_app
from mailgate_emulator.demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_state

DEMO_PATH = "/demo-idp"
DEMO_INTEGRATION = "demo"


def mount_demo(app: FastAPI, ctx: Context) -> None:
    """The emulator's sign-in routes and pages under DEMO_PATH — never its control API, which
    would let anyone who reaches mailgate add accounts or move its clock. Its URLs start with the
    base URL, whatever `Host` a request names, and its request bodies are bounded."""
    emulator = create_sign_in_app(
        demo_state([ctx.settings.redirect_url]),
        public_url=ctx.settings.base_url.rstrip("/") + DEMO_PATH,
    )
    redirect_slashes_to_base_url(emulator.router, ctx.settings.base_url)
    app.mount(DEMO_PATH, emulator)


async def ensure_demo_integration(ctx: Context) -> None:
    """Create the `demo` integration (Microsoft preset, emulated login host) unless it exists."""
    async with ctx.db.session() as session:
        try:
            await get_integration(session, DEMO_INTEGRATION)
            return
        except NotFound:
            pass
    await add_integration(
        ctx,
        DEMO_INTEGRATION,
        IntegrationOptions(
            provider="microsoft",
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            tenant="common",
            authority=ctx.settings.base_url + DEMO_PATH,
        ),
    )

"""The device flow (RFC 8628) against oidc-provider: a public client, approved on its pages."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.oidc import OidcProvider, approve_device_code, deny_device_code

from mailgate.context import Context
from mailgate.errors import OperationFailed
from mailgate.oauth.device import poll_for_approval, request_device_code
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.oauth.tokens import TokenKeeper

pytestmark = pytest.mark.servers


async def add_public(ctx: Context, provider: OidcProvider) -> None:
    await add_integration(
        ctx,
        "op-device",
        IntegrationOptions(
            provider="generic",
            client_id=provider.device_client.client_id,
            discovery_url=provider.discovery_url,
            scopes=["openid", "email", "offline_access", "mail"],
        ),
    )


async def test_device_flow_pending_then_approved(ctx: Context, oidc_provider: OidcProvider) -> None:
    await add_public(ctx, oidc_provider)
    integration, code = await request_device_code(ctx, "op-device")
    assert code.user_code and code.verification_uri.startswith(oidc_provider.issuer)
    waits: list[int] = []

    async def approve_later() -> None:
        while not waits:  # approve once mailgate has seen authorization_pending
            await asyncio.sleep(0.05)
        await approve_device_code(oidc_provider, user_code=code.user_code, login="ivy@example.test")

    async def real_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    ctx.sleep = real_sleep
    approval = asyncio.create_task(approve_later())
    credential = await poll_for_approval(ctx, integration, code, on_wait=waits.append)
    await approval
    assert credential.account == "ivy@example.test"
    assert credential.grant_type == "device_code" and credential.refresh_token_enc
    token = await TokenKeeper(ctx).refresh(credential.id)
    assert (await oidc_provider.introspect(token.value))["username"] == "ivy@example.test"


async def test_device_flow_expired(ctx: Context, oidc_provider: OidcProvider) -> None:
    await add_public(ctx, oidc_provider)
    integration, code = await request_device_code(ctx, "op-device")

    async def jump(seconds: float) -> None:
        ctx.clock.advance(seconds + code.expires_in)  # type: ignore[attr-defined]
        await asyncio.sleep(0)

    ctx.sleep = jump
    with pytest.raises(OperationFailed, match="expired"):
        await poll_for_approval(ctx, integration, code)


async def test_device_flow_denied(ctx: Context, oidc_provider: OidcProvider) -> None:
    await add_public(ctx, oidc_provider)
    integration, code = await request_device_code(ctx, "op-device")
    await deny_device_code(oidc_provider, user_code=code.user_code)

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    ctx.sleep = no_wait
    with pytest.raises(OperationFailed, match="declined"):
        await poll_for_approval(ctx, integration, code)

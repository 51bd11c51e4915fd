"""Sign-in requests: the start link, its expiry and single use, and clean-up (no network)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.support.clock import FakeClock

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.oauth import signin
from mailgate.oauth.integrations import IntegrationOptions, add_integration


@pytest.fixture
async def google(ctx: Context) -> None:
    await add_integration(ctx, "gmail", IntegrationOptions(provider="google", client_id="g-1"))


async def test_start_link_redirects_with_pkce_and_google_offline_access(
    ctx: Context, google: None
) -> None:
    started = await signin.begin(ctx, "gmail", login_hint="a@example.com")
    assert started.start_url.startswith("https://mailgate.test/oauth2/start?request=")
    token = parse_qs(urlsplit(started.start_url).query)["request"][0]
    redirect = await signin.open_start_link(ctx, token)
    assert isinstance(redirect, signin.Redirect)
    query = parse_qs(urlsplit(redirect.url).query)
    assert redirect.url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert query["redirect_uri"] == ["https://mailgate.test/oauth2/callback"]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["code_challenge_method"] == ["S256"] and query["login_hint"] == ["a@example.com"]
    assert redirect.cookie_name == f"mailgate_signin_{started.request_id}"
    assert redirect.max_age == 600


async def test_unknown_and_expired_start_links(
    ctx: Context, clock: FakeClock, google: None
) -> None:
    unknown = await signin.open_start_link(ctx, "nope")
    assert isinstance(unknown, signin.Outcome) and unknown.status_code == 400
    started = await signin.begin(ctx, "gmail")
    clock.advance(minutes=11)
    token = parse_qs(urlsplit(started.start_url).query)["request"][0]
    expired = await signin.open_start_link(ctx, token)
    assert isinstance(expired, signin.Outcome) and "10 minutes" in expired.message


async def test_callback_without_state_is_refused(ctx: Context) -> None:
    outcome = await signin.complete(
        ctx, state=None, code="c", error=None, error_description=None, cookies={}
    )
    assert not outcome.ok and outcome.status_code == 400 and "no state" in outcome.message


async def test_begin_needs_https_and_a_known_prompt(ctx: Context, google: None) -> None:
    with pytest.raises(BadInput, match="prompt"):
        await signin.begin(ctx, "gmail", prompt="always")
    ctx.settings = replace(ctx.settings, base_url="http://mailgate.test")
    with pytest.raises(BadInput, match="https://"):
        await signin.begin(ctx, "gmail")


async def test_old_requests_are_pruned(ctx: Context, clock: FakeClock, google: None) -> None:
    await signin.begin(ctx, "gmail")
    assert await signin.prune(ctx) == 0
    clock.advance(days=8)
    assert await signin.prune(ctx) == 1

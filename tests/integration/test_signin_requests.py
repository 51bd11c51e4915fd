"""Sign-in requests: the start link, its expiry and single use, and clean-up (no network)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from tests.support.clock import FakeClock

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.oauth import signin
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.web.app import create_app


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


def start_token(started: signin.Started) -> str:
    return parse_qs(urlsplit(started.start_url).query)["request"][0]


def state_of(redirect: signin.Redirect) -> str:
    return parse_qs(urlsplit(redirect.url).query)["state"][0]


async def test_the_start_link_belongs_to_the_first_browser_that_opens_it(
    ctx: Context, google: None
) -> None:
    started = await signin.begin(ctx, "gmail")
    first = await signin.open_start_link(ctx, start_token(started), {})
    assert isinstance(first, signin.Redirect)
    for cookies in (
        {},
        {first.cookie_name: "a guess"},
        {"mailgate_signin_999": first.cookie_value},
    ):
        later = await signin.open_start_link(ctx, start_token(started), cookies)
        assert isinstance(later, signin.Outcome) and later.status_code == 403
        assert "another browser" in later.message
    # The first browser finishes: its state is still the request's, bound to its cookie (the
    # provider's answer here is a refusal, so that no token request leaves the test).
    outcome = await signin.complete(
        ctx,
        state=state_of(first),
        code=None,
        error="access_denied",
        error_description="The user declined.",
        cookies={first.cookie_name: first.cookie_value},
    )
    assert outcome.title == "The provider refused the sign-in", outcome


async def test_looking_at_the_start_link_binds_nothing(ctx: Context, google: None) -> None:
    """Link previews, mail scanners and Safe Links fetch a link before the person does: that
    fetch shows where the link leads and takes nothing, so the person's browser still binds."""
    started = await signin.begin(ctx, "gmail", login_hint="carol@example.com")
    for _ in range(3):  # a preview, a scanner, the person's first look
        seen = await signin.look_at_start_link(ctx, start_token(started), {})
        assert seen == signin.Confirm("gmail", "Google", "carol@example.com")
    first = await signin.open_start_link(ctx, start_token(started), {})
    assert isinstance(first, signin.Redirect)
    # Once a browser continued, the page says so to any other.
    other = await signin.look_at_start_link(ctx, start_token(started), {})
    assert isinstance(other, signin.Outcome) and other.status_code == 403
    own = {first.cookie_name: first.cookie_value}
    assert isinstance(
        await signin.look_at_start_link(ctx, start_token(started), own), signin.Confirm
    )


async def test_the_first_browser_may_open_its_link_again(ctx: Context, google: None) -> None:
    started = await signin.begin(ctx, "gmail")
    first = await signin.open_start_link(ctx, start_token(started), {})
    assert isinstance(first, signin.Redirect)
    again = await signin.open_start_link(
        ctx, start_token(started), {first.cookie_name: first.cookie_value}
    )
    assert isinstance(again, signin.Redirect)
    assert again.cookie_value == first.cookie_value and state_of(again) != state_of(first)
    stolen = await signin.complete(
        ctx, state=state_of(again), code="c", error=None, error_description=None, cookies={}
    )
    assert stolen.status_code == 400 and stolen.title == "Sign-in started in another browser"


async def test_two_browsers_opening_the_link_at_once_bind_it_once(
    ctx: Context, google: None
) -> None:
    started = await signin.begin(ctx, "gmail")
    results = await asyncio.gather(
        *(signin.open_start_link(ctx, start_token(started), {}) for _ in range(2))
    )
    assert sorted(type(r).__name__ for r in results) == ["Outcome", "Redirect"]


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/oauth2/start/?request=abc", "https://mailgate.test/oauth2/start?request=abc"),
        ("/healthz/", "https://mailgate.test/healthz"),
        (
            "/oauth2/callback/?state=s&code=c",
            "https://mailgate.test/oauth2/callback?state=s&code=c",
        ),
        ("/demo-idp/devicelogin/", "https://mailgate.test/demo-idp/devicelogin"),
    ],
)
async def test_redirects_use_the_base_url_never_the_host_header(
    ctx: Context, path: str, location: str
) -> None:
    app = create_app(ctx, run_workers=False, demo=True)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="https://evil.test") as client:
        answer = await client.get(path, headers={"Host": "evil.test"})
    assert answer.status_code == 307 and answer.headers["location"] == location


async def test_an_unknown_path_is_not_found_with_no_redirect(ctx: Context) -> None:
    transport = httpx2.ASGITransport(app=create_app(ctx, run_workers=False, demo=True))
    async with httpx2.AsyncClient(transport=transport, base_url="https://evil.test") as client:
        for path in ("/demo-idp/_emulator/accounts", "/demo-idp/_emulator/clock/"):
            answer = await client.get(path)
            assert answer.status_code == 404 and "location" not in answer.headers, path
        # Any other path needs a sign-in first: the redirect is relative, never to the Host.
        answer = await client.get("/nothing/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/nothing/"

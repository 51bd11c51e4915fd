"""Signing in and out, sessions, one-time links, CSRF, and the sign-in slow-down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store.models import SignInFailure
from mailgate.tracker import sessions
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.users import add_user, first_admin_link, set_user
from mailgate.web.app import create_app
from mailgate.web.guard import SESSION_COOKIE
from tests.support.clock import FakeClock
from tests.support.web import PASSWORD, WebClient


async def test_a_page_sends_an_anonymous_visitor_to_sign_in_and_back(anonymous: WebClient) -> None:
    answer = await anonymous.get("/integrations?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/integrations%3Fx%3D1"
    login = await anonymous.get(answer.headers["location"])
    assert 'for="email">Email<' in login.text and 'for="password">Password<' in login.text
    assert ">Sign in</button>" in login.text


async def test_sign_in_sets_a_safe_cookie_and_lands_on_next(
    ctx: Context, anonymous: WebClient
) -> None:
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    page = await anonymous.get("/login")
    token = page.text.split('name="form_token" value="')[1].split('"')[0]
    answer = await anonymous.http.post(
        "/login",
        data={
            "email": "Admin@Example.com",
            "password": PASSWORD,
            "form_token": token,
            "next": "/users",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/users"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    lowered = cookie.lower()
    assert "secure" in lowered and "httponly" in lowered and "samesite=lax" in lowered


async def test_next_never_leaves_the_site(ctx: Context, anonymous: WebClient) -> None:
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    for target in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ):
        page = await anonymous.get("/login")
        token = page.text.split('name="form_token" value="')[1].split('"')[0]
        answer = await anonymous.http.post(
            "/login",
            data={
                "email": "admin@example.com",
                "password": PASSWORD,
                "form_token": token,
                "next": target,
            },
        )
        assert answer.headers["location"] == "/", target


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    ctx: Context, anonymous: WebClient
) -> None:
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    wrong = await anonymous.sign_in("admin@example.com", "not the password")
    unknown = await anonymous.sign_in("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert sessions.REFUSED in wrong.text and sessions.REFUSED in unknown.text
    events = [e["action"] for e in await audit_log(ctx)]
    assert events.count("user.sign-in-failed") == 2


async def test_failed_sign_ins_are_slowed_per_account_and_per_address(
    ctx: Context, clock: FakeClock, anonymous: WebClient
) -> None:
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    for _ in range(sessions.FREE_FAILURES):
        assert sessions.REFUSED in (await anonymous.sign_in("admin@example.com", "guess")).text
    blocked = await anonymous.sign_in("admin@example.com", "guess")
    assert sessions.REFUSED in blocked.text  # the fifth failure is counted, then blocked
    # Now even the right password waits, and an unknown account gets the same answer.
    right = await anonymous.sign_in("admin@example.com", PASSWORD)
    assert "Too many failed sign-ins" in right.text and right.status_code == 400
    # The same address trying another account is blocked too.
    other = await anonymous.sign_in("other@example.com", "guess")
    assert "Too many failed sign-ins" in other.text
    clock.advance(2)
    assert (await anonymous.sign_in("admin@example.com", PASSWORD)).status_code == 303


async def test_each_sign_in_makes_a_new_session_and_sign_out_ends_it(
    ctx: Context, admin: WebClient
) -> None:
    planted = "planted-session-id"
    admin.http.cookies.set(SESSION_COOKIE, planted, domain="mailgate.test")
    answer = await admin.sign_in("admin@example.com")
    new = answer.cookies.get(SESSION_COOKIE)
    assert new and new != planted
    assert await sessions.load_session(ctx, planted) is None
    assert (await admin.get("/")).status_code == 200
    out = await admin.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert await sessions.load_session(ctx, new) is None
    admin.http.cookies.set(SESSION_COOKIE, new, domain="mailgate.test")
    assert (await admin.get("/")).status_code == 303


async def test_sessions_end_when_idle_too_long_or_too_old(
    ctx: Context, clock: FakeClock, admin: WebClient
) -> None:
    assert (await admin.get("/")).status_code == 200
    clock.advance((sessions.IDLE + timedelta(seconds=1)).total_seconds())
    assert (await admin.get("/")).status_code == 303
    await admin.sign_in("admin@example.com")
    for _ in range(int(sessions.ABSOLUTE / sessions.IDLE) + 1):
        clock.advance((sessions.IDLE - timedelta(minutes=1)).total_seconds())
        answer = await admin.get("/")
    assert answer.status_code == 303  # used all along, but older than ABSOLUTE


async def test_a_password_change_or_disabling_ends_the_users_sessions(
    ctx: Context, admin: WebClient
) -> None:
    await add_user(ctx, "second@example.com", "admin", PASSWORD)
    await set_user(ctx, "admin@example.com", password="another long password")
    assert (await admin.get("/")).status_code == 303
    await admin.sign_in("admin@example.com", "another long password")
    await set_user(ctx, "admin@example.com", disabled=True)
    assert (await admin.get("/")).status_code == 303
    assert (await admin.sign_in("admin@example.com", "another long password")).status_code == 400


async def test_a_post_without_the_right_csrf_token_changes_nothing(
    ctx: Context, admin: WebClient
) -> None:
    for token in ("", "wrong"):
        answer = await admin.http.post("/logout", data={"csrf": token})
        assert answer.status_code == 403
        assert (await admin.get("/")).status_code == 200  # still signed in: nothing changed
    answer = await admin.http.post("/logout", headers={"X-CSRF-Token": admin.csrf or ""})
    assert answer.status_code == 303


async def test_a_cross_site_post_is_refused_even_with_the_token(admin: WebClient) -> None:
    answer = await admin.http.post(
        "/logout", data={"csrf": admin.csrf or ""}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    answer = await admin.http.post(
        "/logout", data={"csrf": admin.csrf or ""}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert answer.status_code == 403
    assert (await admin.get("/")).status_code == 200


async def test_the_sign_in_form_needs_its_own_token(ctx: Context, anonymous: WebClient) -> None:
    await add_user(ctx, "admin@example.com", "admin", PASSWORD)
    answer = await anonymous.http.post(
        "/login", data={"email": "admin@example.com", "password": PASSWORD, "form_token": "forged"}
    )
    assert answer.status_code == 400 and SESSION_COOKIE not in answer.cookies


async def test_an_agent_gets_the_desk_and_never_an_admin_page(agent: WebClient) -> None:
    home = await agent.get("/")  # the admin's dashboard; signing in took them to /issues
    assert home.status_code == 403 and 'href="/issues"' in home.text
    for path in ("/integrations", "/users", "/audit", "/mailboxes", "/smtp", "/credentials"):
        assert (await agent.get(path)).status_code == 403, path


async def test_requests_larger_than_the_limit_are_refused(admin: WebClient) -> None:
    answer = await admin.http.post("/logout", content=b"x" * (1024 * 1024 + 1))
    assert answer.status_code == 413


async def test_the_first_admin_link_works_once_and_signs_in(
    ctx: Context, anonymous: WebClient
) -> None:
    link = await first_admin_link(ctx)
    assert link is not None
    path = link.url.removeprefix(ctx.settings.base_url)
    page = await anonymous.get(path)
    assert "Create the first admin" in page.text
    token = page.text.split('name="form_token" value="')[1].split('"')[0]
    form = {
        "email": "Boss@Example.com",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "form_token": token,
    }
    answer = await anonymous.http.post(path, data=form)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert (await anonymous.get("/")).status_code == 200
    assert await first_admin_link(ctx) is None  # an admin can sign in now
    again = await anonymous.get(path)
    assert again.status_code == 400 and "This link is not valid" in again.text


async def test_a_new_users_link_sets_their_password(ctx: Context, anonymous: WebClient) -> None:
    await add_user(ctx, "boss@example.com", "admin", PASSWORD)
    _, link = await add_user(ctx, "new@example.com", "agent")
    assert link is not None
    path = link.url.removeprefix(ctx.settings.base_url)
    page = await anonymous.get(path)
    assert "new@example.com" in page.text
    token = page.text.split('name="form_token" value="')[1].split('"')[0]
    short = {"password": "short", "confirm": "short", "form_token": token}
    refused = await anonymous.http.post(path, data=short)
    assert refused.status_code == 400 and "too short" in refused.text
    token = refused.text.split('name="form_token" value="')[1].split('"')[0]
    form = {"password": PASSWORD, "confirm": PASSWORD, "form_token": token}
    answer = await anonymous.http.post(path, data=form)
    assert answer.status_code == 303 and answer.headers["location"] == "/issues"
    anonymous.http.cookies.clear()
    assert (await anonymous.sign_in("new@example.com")).status_code == 303


async def test_expired_sessions_and_old_failures_are_pruned(
    ctx: Context, clock: FakeClock, admin: WebClient
) -> None:
    await admin.sign_in("admin@example.com", "wrong password")
    assert await sessions.prune_sessions(ctx) == 0  # the session is live
    clock.advance((sessions.IDLE + timedelta(minutes=1)).total_seconds())
    assert await sessions.prune_sessions(ctx) == 1

    def left(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(SignInFailure)) or 0)

    assert await ctx.db.run(left) == 0  # more than an hour without failures: forgotten


async def test_a_bookmarked_logout_asks_before_signing_out(admin: WebClient) -> None:
    page = await admin.get("/logout")
    assert page.status_code == 200 and 'action="/logout"' in page.text
    assert (await admin.get("/")).status_code == 200  # the GET changed nothing


async def test_a_chunked_body_over_the_limit_is_refused_on_open_routes_too(
    anonymous: WebClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"x" * 65536

    answer = await anonymous.http.post("/login", content=chunks())
    assert answer.status_code == 413


async def test_odd_page_numbers_are_page_one(admin: WebClient) -> None:
    for odd in ("²", "٣", "9" * 40, "-1"):
        assert (await admin.get(f"/issues?page={odd}")).status_code == 200, odd
        assert (await admin.get(f"/audit?before={odd}")).status_code == 200, odd


async def test_websockets_are_refused(ctx: Context) -> None:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    app = create_app(ctx, run_workers=False)
    await app({"type": "websocket", "path": "/", "headers": [], "query_string": b""}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]

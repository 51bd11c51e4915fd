"""The Users page: a new user's one-time link shown once and working at /welcome/…, a role
changed, a user disabled (signed out at once) and enabled, a password reset link, and the last
admin kept (the refusal shown inline)."""

from __future__ import annotations

import re
from html import unescape

from mailgate.context import Context
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.users import add_user, list_users
from tests.support.web import PASSWORD, WebClient, web_client

LINK = re.compile(r'<input id="link" type="text" value="([^"]+)" readonly>')


def one_time_link(page: str) -> str:
    found = LINK.search(page)
    assert found is not None, "no one-time link on the page"
    return unescape(found.group(1))


async def use_link(ctx: Context, url: str, password: str) -> int:
    """Open the link as the new user would and choose a password; the answer's status."""
    path = url.removeprefix(ctx.settings.base_url)
    async for visitor in web_client(ctx):
        page = await visitor.get(path)
        assert page.status_code == 200, page.text
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = await visitor.http.post(
            path, data={"password": password, "confirm": password, "form_token": token.group(1)}
        )
        return answer.status_code
    raise AssertionError("no client")


async def test_a_new_users_link_is_shown_once_and_lets_them_choose_a_password(
    ctx: Context, admin: WebClient
) -> None:
    form = await admin.get("/users/new")
    assert ">Email</label>" in form.text and ">Role</label>" in form.text
    added = await admin.post("/users", {"email": "Agent@Example.com", "role": "agent"})
    assert added.status_code == 200
    assert "User agent@example.com added" in added.text
    assert "Send this link to agent@example.com yourself" in added.text
    assert 'data-copy="link"' in added.text
    url = one_time_link(added.text)
    assert url.startswith(f"{ctx.settings.base_url}/welcome/")
    token = url.rsplit("/", 1)[1]
    for path in ("/users", "/users/agent@example.com"):  # never again after that answer
        page = await admin.get(path)
        assert token not in page.text
        assert "link pending" in page.text
    assert await use_link(ctx, url, "a new password for agent") == 303
    listed = await admin.get("/users")
    row = listed.text.split('data-user="agent@example.com"')[1].split("</tr>")[0]
    assert ">agent<" in row and ">enabled<" in row and ">set<" in row
    spent = await admin.get(url.removeprefix(ctx.settings.base_url))
    assert spent.status_code == 400 and "This link is not valid" in spent.text


async def test_a_bad_address_or_a_known_one_is_refused_inline(
    ctx: Context, admin: WebClient
) -> None:
    bad = await admin.post("/users", {"email": "not-an-address", "role": "admin"})
    assert bad.status_code == 400
    assert '<p class="error" role="alert">&#39;not-an-address&#39; is not an email' in bad.text
    assert 'value="not-an-address"' in bad.text
    assert '<option value="admin" selected>' in bad.text
    again = await admin.post("/users", {"email": "admin@example.com", "role": "agent"})
    assert again.status_code == 400 and "already exists" in again.text
    assert [u.email for u in await list_users(ctx)] == ["admin@example.com"]


async def test_disabling_a_user_ends_their_session_at_once_and_enabling_lets_them_back(
    ctx: Context, admin: WebClient, agent: WebClient
) -> None:
    assert (await agent.get("/issues")).status_code == 200
    answer = await admin.post("/users/agent@example.com/disable")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/users/agent@example.com"
    page = await admin.get(answer.headers["location"])
    assert "agent@example.com is disabled and was signed out everywhere." in page.text
    assert ">disabled<" in page.text and ">Enable</button>" in page.text
    refused = await agent.get("/issues")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    assert (await agent.sign_in("agent@example.com")).status_code == 400
    assert (await admin.post("/users/agent@example.com/enable")).status_code == 303
    assert (await agent.sign_in("agent@example.com")).status_code == 303
    details = [
        (e["action"], e["subject"], e["detail"], e["actor"])
        for e in await audit_log(ctx)
        if e["action"] == "user.set"
    ]
    assert details == [
        ("user.set", "agent@example.com", "enabled", "admin@example.com"),
        ("user.set", "agent@example.com", "disabled", "admin@example.com"),
    ]


async def test_a_role_change_is_saved(ctx: Context, admin: WebClient) -> None:
    await add_user(ctx, "agent@example.com", "agent", PASSWORD)
    answer = await admin.post("/users/agent@example.com/role", {"role": "admin"})
    assert answer.status_code == 303
    page = await admin.get(answer.headers["location"])
    assert "agent@example.com is now admin" in page.text
    assert {u.email: u.role for u in await list_users(ctx)}["agent@example.com"] == "admin"


async def test_the_last_admin_is_kept_and_the_page_says_why(ctx: Context, admin: WebClient) -> None:
    for action, data in (("disable", {}), ("role", {"role": "agent"})):
        answer = await admin.post(f"/users/admin@example.com/{action}", data)
        assert answer.status_code == 400, action
        assert '<p class="error" role="alert">admin@example.com is the last enabled admin' in (
            answer.text
        )
    [user] = await list_users(ctx)
    assert (user.role, user.disabled) == ("admin", False)
    assert (await admin.get("/users")).status_code == 200  # still signed in


async def test_a_password_reset_link_replaces_the_last_and_works(
    ctx: Context, admin: WebClient
) -> None:
    await add_user(ctx, "agent@example.com", "agent", PASSWORD)
    first = one_time_link((await admin.post("/users/agent@example.com/reset-link")).text)
    answer = await admin.post("/users/agent@example.com/reset-link")
    assert answer.status_code == 200
    assert "Password reset link for agent@example.com" in answer.text
    assert "the old one works until then" in answer.text
    second = one_time_link(answer.text)
    assert second != first
    assert await use_link(ctx, second, "a brand new password") == 303
    async for client in web_client(ctx):
        assert (await client.sign_in("agent@example.com", PASSWORD)).status_code == 400
        assert (
            await client.sign_in("agent@example.com", "a brand new password")
        ).status_code == 303


async def test_an_unknown_user_is_not_found(admin: WebClient) -> None:
    assert (await admin.get("/users/nobody@example.com")).status_code == 404
    assert (await admin.post("/users/nobody@example.com/reset-link")).status_code == 404
    assert (await admin.post("/users/nobody@example.com/disable")).status_code == 404


async def test_no_page_shows_a_password_hash(ctx: Context, admin: WebClient) -> None:
    [user] = await list_users(ctx)
    assert user.password_hash is not None
    for path in ("/users", "/users/admin@example.com"):
        page = await admin.get(path)
        assert user.password_hash not in page.text and "$argon2" not in page.text

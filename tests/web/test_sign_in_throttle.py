"""The sign-in slow-down under attack: guesses spread over many addresses, guesses sent at once,
and a stolen session guessing its owner's password."""

from __future__ import annotations

import asyncio

import pytest

from mailgate.context import Context
from mailgate.tracker import sessions
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.users import add_user, set_user
from tests.support.clock import FakeClock
from tests.support.web import PASSWORD, WebClient

ADMIN = "admin@example.com"


async def attempt(ctx: Context, password: str, address: str, email: str = ADMIN) -> str:
    try:
        await sessions.sign_in(ctx, email, password, address)
    except sessions.SignInRefused as refused:
        return str(refused)
    return "signed in"


async def test_nobody_keeps_the_owner_locked_out(ctx: Context, clock: FakeClock) -> None:
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    # Forty guesses, four from each of ten addresses: no address is blocked, the account is.
    for n in range(40):
        clock.advance(0.5)
        await attempt(ctx, "guess", f"198.51.100.{n // 4}")
    blocked = await attempt(ctx, PASSWORD, "203.0.113.9")
    assert blocked.startswith("Too many failed sign-ins: wait")
    waited = int(blocked.split("wait ")[1].split(" ")[0])
    assert waited <= sessions.ACCOUNT_MAX_BLOCK.total_seconds()
    clock.advance(sessions.ACCOUNT_MAX_BLOCK.total_seconds())
    assert await attempt(ctx, PASSWORD, "203.0.113.9") == "signed in"


async def test_one_address_guessing_is_blocked_for_long(ctx: Context, clock: FakeClock) -> None:
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    for _ in range(14):
        clock.advance(40)  # past the account's own block each time
        await attempt(ctx, "guess", "198.51.100.7")
    clock.advance(40)
    assert "Too many failed sign-ins" in await attempt(ctx, PASSWORD, "198.51.100.7")
    # The owner, elsewhere, is not held up by that address.
    clock.advance(sessions.ACCOUNT_MAX_BLOCK.total_seconds())
    assert await attempt(ctx, PASSWORD, "203.0.113.9") == "signed in"


async def test_guesses_sent_at_once_are_counted_before_they_are_checked(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    checked = 0
    real = sessions.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        nonlocal checked
        checked += 1
        return real(password_hash, password)

    monkeypatch.setattr(sessions, "verify_password", counting)
    answers = await asyncio.gather(*(attempt(ctx, f"guess {n}", "198.51.100.7") for n in range(12)))
    assert checked <= sessions.FREE_FAILURES + 1, answers
    assert sum("Too many failed sign-ins" in a for a in answers) >= 12 - checked


async def test_a_new_password_clears_the_accounts_counts(ctx: Context) -> None:
    await add_user(ctx, "other@example.com", "admin", PASSWORD)
    await add_user(ctx, ADMIN, "admin", PASSWORD)
    for _ in range(6):
        await attempt(ctx, "guess", "198.51.100.7")
    assert "Too many" in await attempt(ctx, PASSWORD, "203.0.113.9")
    await set_user(ctx, ADMIN, password="a brand new password")
    assert await attempt(ctx, "a brand new password", "203.0.113.9") == "signed in"


async def test_a_stolen_session_cant_guess_the_password(ctx: Context, admin: WebClient) -> None:
    for _ in range(sessions.FREE_FAILURES + 1):
        form = {"current": "guess", "password": "x" * 12, "confirm": "x" * 12}
        answer = await admin.post("/account", form)
        assert answer.status_code == 400
    form = {"current": PASSWORD, "password": "y" * 12, "confirm": "y" * 12}
    answer = await admin.post("/account", form)
    assert "Too many failed sign-ins" in answer.text
    actions = [e["action"] for e in await audit_log(ctx)]
    assert actions.count("user.password-check-failed") == sessions.FREE_FAILURES + 1


async def test_a_sign_in_is_logged_as_the_user(ctx: Context, admin: WebClient) -> None:
    sign_ins = [e for e in await audit_log(ctx) if e["action"] == "user.sign-in"]
    assert [e["actor"] for e in sign_ins] == [ADMIN]

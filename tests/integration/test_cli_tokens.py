"""`mailgate token`: a token printed once and never again, listed by its hint, revoked by its
ID; bad input is one sentence and exit status 2."""

from __future__ import annotations

import asyncio

from tests.support.cli import Cli

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.tracker.tokens import user_of_token


def _user_of(settings: Settings, token: str) -> str | None:
    """The user the token acts as, found as the API's guard finds it (None: refused)."""

    async def look() -> str | None:
        ctx = Context.open(settings)
        try:
            user = await user_of_token(ctx, token, "127.0.0.1")
            return None if user is None else user.email
        finally:
            await ctx.close()

    return asyncio.run(look())


def test_a_token_is_printed_once_listed_by_its_hint_and_revoked(
    cli: Cli, settings: Settings
) -> None:
    assert cli("user", "add", "bot-owner@example.com", "--role", "agent").code == 0
    made = cli("token", "create", "--user", "Bot-Owner@example.com", "--name", "chat bot")
    assert made.code == 0, made.stderr
    token, notice = made.stdout.strip().splitlines()
    assert token.startswith("mgt_") and "shown only now" in notice
    assert _user_of(settings, token) == "bot-owner@example.com"

    as_json = cli("token", "create", "--user", "bot-owner@example.com", "--name", "ci", "--json")
    second = as_json.json()
    assert second["token"].startswith("mgt_") and second["name"] == "ci"
    assert second["user"] == "bot-owner@example.com" and second["revoked_at"] is None

    listed = cli("token", "list", "--json")
    assert listed.code == 0
    assert [t["name"] for t in listed.json()] == ["ci", "chat bot"]  # newest first
    assert all("token" not in t for t in listed.json())
    assert token not in listed.stdout and second["token"] not in listed.stdout
    assert listed.json()[1]["hint"] == token[:12] + "…"
    plain = cli("token", "list")
    assert "chat bot" in plain.stdout and token not in plain.stdout
    assert cli("token", "list", "--user", "admin@example.com").code == 2  # no such user

    first_id = str(listed.json()[1]["id"])
    revoked = cli("token", "revoke", first_id)
    assert revoked.code == 0 and "revoked token" in revoked.stdout
    assert _user_of(settings, token) is None
    assert _user_of(settings, second["token"]) == "bot-owner@example.com"
    assert cli("token", "revoke", first_id).code == 0  # again: no error
    mine = cli("token", "list", "--user", "bot-owner@example.com", "--json").json()
    assert [t["revoked_at"] is not None for t in mine] == [False, True]
    actions = [entry["action"] for entry in cli("audit", "list", "--json").json()]
    assert actions.count("token.create") == 2 and actions.count("token.revoke") == 1


def test_bad_input_is_one_sentence_and_exit_2(cli: Cli) -> None:
    assert cli("user", "add", "someone@example.com").code == 0
    for args, words in (
        (("token", "create", "--user", "nobody@example.com", "--name", "x"), "No user"),
        (("token", "create", "--user", "someone@example.com", "--name", "  "), "Give the token"),
        (("token", "create", "--user", "someone@example.com"), "--name"),
        (("token", "revoke", "seven"), "is not a number"),
        (("token", "revoke", "999"), "No token 999"),
    ):
        result = cli(*args)
        assert result.code == 2 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert cli("token", "list", "--json").json() == []

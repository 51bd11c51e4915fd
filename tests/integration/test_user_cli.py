"""`mailgate user` and `mailgate audit`: users for the web UI from the command line, and the log
of who did what."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import Cli


def test_users_are_added_listed_changed_and_disabled(cli: Cli, tmp_path: Path) -> None:
    added = cli("user", "add", "Admin@Example.com", "--role", "admin")
    assert added.code == 0, added.stderr
    link = re.search(r"https://localhost:8443/welcome/\S+", added.stdout)
    assert link is not None, added.stdout  # no password given: a one-time link instead
    password = tmp_path / "pw"
    password.write_text("correct horse battery staple\n")
    assert cli("user", "add", "agent@example.com", "--password-file", str(password)).code == 0
    users = {u["email"]: u for u in cli("user", "list", "--json").json()}
    assert users["admin@example.com"]["role"] == "admin"
    assert users["admin@example.com"]["password_set"] is False
    assert users["agent@example.com"] == {
        **users["agent@example.com"],
        "role": "agent",
        "password_set": True,
    }
    assert "hash" not in cli("user", "list", "--json").stdout
    assert "argon2" not in cli("user", "list").stdout

    # The last admin stays: someone must be able to sign in.
    refused = cli("user", "disable", "admin@example.com")
    assert refused.code == 2 and "last enabled admin" in refused.stderr
    assert cli("user", "set", "agent@example.com", "--role", "admin").code == 0
    assert cli("user", "disable", "admin@example.com").code == 0
    assert cli("user", "list", "--json").json()[0]["disabled"] is True
    reset = cli("user", "set", "agent@example.com", "--reset")
    assert reset.code == 0 and "/welcome/" in reset.stdout

    log = cli("audit", "list", "--json").json()
    assert [e["action"] for e in log][::-1] == [
        "user.add",
        "user.add",
        "user.set",
        "user.set",
        "user.password-link",
    ]
    assert all(e["actor"].startswith("cli:") for e in log)
    assert "correct horse" not in cli("audit", "list").stdout


def test_bad_input_is_one_sentence_and_exit_2(cli: Cli) -> None:
    for args, words in (
        (("user", "add", "not-an-address"), "is not an email address"),
        (("user", "add", "a@example.com", "--role", "owner"), "Role 'owner' is not known"),
        (("user", "set", "nobody@example.com", "--role", "admin"), "No user 'nobody@example.com'"),
        (("audit", "list", "--since", "yesterday"), "is not a date or time"),
    ):
        result = cli(*args)
        assert result.code == 2 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert cli("user", "list", "--json").json() == []

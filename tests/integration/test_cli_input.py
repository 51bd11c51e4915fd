"""Bad input: one plain sentence on stderr, exit 2, nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli import Cli, Result

MS = ["--provider", "microsoft", "--client-id", "11111111-2222-3333-4444-555555555555"]


def assert_refused(result: Result, *words: str) -> None:
    assert result.code == 2, (result.code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def assert_nothing_stored(cli: Cli) -> None:
    listed = cli("integration", "list", "--json")
    assert listed.code == 0 and listed.json() == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--provider", "yahoo", "--client-id", "x"], ["Unknown provider 'yahoo'", "generic"]),
        ([*MS, "--tenant", "not a tenant"], ["Tenant", "common, organizations"]),
        ([*MS, "--cloud", "mars"], ["Unknown cloud 'mars'"]),
        ([*MS, "--use", "nntp"], ["Unknown use 'nntp'"]),
        ([*MS, "--token-endpoint", "http://login.example.com/token"], ["https://"]),
        (
            [
                "--provider",
                "generic",
                "--client-id",
                "x",
                "--authorization-endpoint",
                "https://idp.example/auth",
                "--token-endpoint",
                "http://idp.example/token",
            ],
            ["token endpoint", "https://"],
        ),
        (
            [
                "--provider",
                "generic",
                "--client-id",
                "x",
                "--discovery-url",
                "https://127.0.0.1:9/.well-known/openid-configuration",
            ],
            ["could not be read"],
        ),
        (["--provider", "generic", "--client-id", "x"], ["--discovery-url"]),
        (["--provider", "google", "--client-id", "x", "--tenant", "common"], ["Microsoft"]),
        ([*MS, "--client-secret-file", "/nonexistent/secret"], ["cannot be read"]),
        ([*MS, "--client-secret-env", "MAILGATE_TEST_UNSET_VAR"], ["MAILGATE_TEST_UNSET_VAR"]),
        ([*MS, "--client-secret-expires", "next week"], ["YYYY-MM-DD"]),
        ([*MS, "--no-such-option"], ["No such option"]),
    ],
)
def test_integration_add_refuses_bad_input(cli: Cli, args: list[str], words: list[str]) -> None:
    assert_refused(cli("integration", "add", "bad", *args), *words)
    assert_nothing_stored(cli)


def test_http_base_url_is_refused_and_nothing_stored(cli: Cli) -> None:
    result = cli("integration", "add", "m", *MS, MAILGATE_BASE_URL="http://desk.example.com")
    assert_refused(result, "MAILGATE_BASE_URL", "https://")
    assert_nothing_stored(cli)


def test_authorize_refuses_an_http_base_url(cli: Cli) -> None:
    assert cli("integration", "add", "m", *MS, "--tenant", "contoso.com").code == 0
    result = cli(
        "integration",
        "authorize",
        "m",
        "--client-credentials",
        MAILGATE_BASE_URL="http://desk.example.com",
    )
    assert_refused(result, "https://")


def test_client_credentials_without_a_secret_is_refused(cli: Cli) -> None:
    assert cli("integration", "add", "m", *MS, "--tenant", "contoso.com").code == 0
    assert_refused(cli("integration", "authorize", "m", "--client-credentials"), "no client secret")
    assert cli("credential", "list", "--json").json() == []


def test_client_credentials_need_a_tenant_id(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("value")
    assert cli("integration", "add", "m", *MS, "--client-secret-file", str(secret)).code == 0
    assert_refused(cli("integration", "authorize", "m", "--client-credentials"), "tenant")


@pytest.mark.parametrize(
    "args",
    [
        ["integration", "show", "nope"],
        ["integration", "set", "nope", "--client-id", "x"],
        ["integration", "test", "nope"],
        ["integration", "delete", "nope"],
        ["integration", "authorize", "nope", "--client-credentials"],
        ["credential", "show", "42"],
        ["credential", "refresh", "42"],
        ["credential", "revoke", "42"],
    ],
)
def test_unknown_names_are_refused(cli: Cli, args: list[str]) -> None:
    assert_refused(cli(*args), "list")


def test_duplicate_name_is_refused(cli: Cli) -> None:
    assert cli("integration", "add", "m", *MS).code == 0
    assert_refused(cli("integration", "add", "m", *MS), "already exists", "integration set")


def test_set_keeps_what_it_does_not_change(cli: Cli, tmp_path: Path) -> None:
    assert cli("integration", "add", "m", *MS, "--tenant", "contoso.com", "--use", "imap").code == 0
    secret = tmp_path / "s"
    secret.write_text("new-secret-value")
    changed = cli(
        "integration",
        "set",
        "m",
        "--client-secret-file",
        str(secret),
        "--client-secret-expires",
        "2099-01-01",
        "--json",
    )
    assert changed.code == 0, changed.stderr
    view = changed.json()
    assert view["tenant"] == "contoso.com"
    assert view["client_secret_set"] is True
    assert view["client_secret_expires"] == "2099-01-01"
    assert view["scopes"][0] == "https://outlook.office.com/IMAP.AccessAsUser.All"
    assert "new-secret-value" not in changed.stdout + changed.stderr


def test_secret_expiry_is_warned_14_days_ahead(cli: Cli) -> None:
    from datetime import date, timedelta

    soon = (date.today() + timedelta(days=10)).isoformat()
    added = cli("integration", "add", "m", *MS, "--client-secret-expires", soon, "--json")
    assert added.json()["status"] == "secret-expiring"
    assert "expires in 10 day(s)" in added.stderr
    later = (date.today() + timedelta(days=30)).isoformat()
    changed = cli("integration", "set", "m", "--client-secret-expires", later, "--json")
    assert changed.json()["status"] == "ok" and changed.stderr == ""


def test_list_json_fields(cli: Cli) -> None:
    assert cli("integration", "add", "g", "--provider", "google", "--client-id", "x").code == 0
    [view] = cli("integration", "list", "--json").json()
    for field in (
        "name",
        "provider",
        "client_id",
        "authorization_endpoint",
        "token_endpoint",
        "redirect_url",
        "scopes",
        "client_secret_expires",
    ):
        assert field in view
    assert view["redirect_url"] == "https://localhost:8443/oauth2/callback"
    assert view["scopes"] == ["https://mail.google.com/", "openid", "email"]
    assert view["auth_params"] == {"access_type": "offline", "prompt": "consent"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["out"], ["No host given"]),
        (
            [
                "out",
                "--host",
                "smtp.example.com",
                "--security",
                "none",
                "--username",
                "a@example.com",
                "--password-file",
                "PASSWORD",
            ],
            ["--security none", "not a loopback"],
        ),
        (
            [
                "out",
                "--host",
                "smtp.example.com",
                "--username",
                "a@example.com",
                "--credential",
                "7",
            ],
            ["No credential 7"],
        ),
        (
            [
                "out",
                "--host",
                "smtp.example.com",
                "--username",
                "a@example.com",
                "--password-file",
                "PASSWORD",
                "--from",
                "nobody",
            ],
            ["'nobody' is not an email address"],
        ),
        (
            ["out", "--host", "smtp.example.com", "--username", "a@example.com"],
            ["No authentication given"],
        ),
        (["bad name", "--host", "x"], ["SMTP server name 'bad name' is not valid"]),
        (
            [
                "out",
                "--host",
                "smtp.example.com",
                "--username",
                "a@example.com",
                "--password-file",
                "PASSWORD",
                "--ca-file",
                "PASSWORD",
            ],
            ["holds no PEM certificate"],
        ),
    ],
)
def test_smtp_add_refuses_bad_input(
    cli: Cli, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    password = tmp_path / "password"
    password.write_text("secret\n")
    args = [str(password) if a == "PASSWORD" else a for a in args]
    assert_refused(cli("smtp", "add", *args), *words)
    assert cli("smtp", "list", "--json").json() == []


def test_smtp_and_outbox_commands(cli: Cli, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("secret\n")
    added = cli(
        "smtp",
        "add",
        "out",
        "--host",
        "smtp.office365.com",
        "--username",
        "help@contoso.com",
        "--password-file",
        str(password),
        "--json",
    )
    assert added.code == 0, added.stderr
    view = added.json()
    assert (view["port"], view["security"], view["from"]) == (587, "starttls", "help@contoso.com")
    assert "deprecated, you should use OAuth 2.0" in added.stderr
    assert "secret" not in added.stdout
    assert_refused(cli("smtp", "test", "out", "--to", "not-an-address"), "not an email address")
    assert_refused(
        cli("smtp", "test", "missing", "--to", "a@example.com"), "No SMTP server 'missing'"
    )
    assert cli("outbox", "list", "--json").json() == []
    assert_refused(cli("outbox", "retry"), "Give a message ID or --all")
    assert_refused(cli("outbox", "retry", "9"), "No dead message 9")
    assert cli("outbox", "flush", "--json").json() == {
        "sent": 0,
        "retrying": 0,
        "waiting": 0,
        "dead": 0,
    }


MAILBOX = [
    "--protocol",
    "imap",
    "--host",
    "127.0.0.1",
    "--security",
    "none",
    "--username",
    "support@example.com",
    "--project",
    "HELP",
]


@pytest.fixture
def desk(cli: Cli, tmp_path: Path) -> list[str]:
    """A project HELP, and what `mailbox add` needs besides (a password file)."""
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    password = tmp_path / "password"
    password.write_text("secret\n")
    return [*MAILBOX, "--password-file", str(password)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--project", "NOPE"], ["No project NOPE", "mailgate project add NOPE"]),
        (["--catch-address", "notanemail"], ["'notanemail' is not an email address"]),
        (["--catch-address", "sales@localhost"], ["is not an email address"]),
        (["--non-participants", "sometimes"], ["'sometimes'", "new-issue, hold, comment"]),
        (["--non-participants", "hold", "--comments-from-anyone"], ["disagree"]),
        (["--max-cc-watchers", "-1"], ["--max-cc-watchers cannot be negative"]),
        (["--max-comments-per-issue-hour", "-1"], ["--max-comments-per-issue-hour"]),
        (["--max-cc-watchers", "ten"], ["--max-cc-watchers", "valid integer"]),
    ],
)
def test_mailbox_add_refuses_bad_handler_input(
    cli: Cli, desk: list[str], args: list[str], words: list[str]
) -> None:
    assert_refused(cli("mailbox", "add", "support", *desk, *args), *words)
    assert cli("mailbox", "list", "--json").json() == []


def test_mailbox_set_refuses_a_project_that_does_not_exist(cli: Cli, desk: list[str]) -> None:
    assert cli("mailbox", "add", "support", *desk).code == 0
    assert_refused(cli("mailbox", "set", "support", "--project", "NOPE"), "No project NOPE")
    assert_refused(cli("mailbox", "set", "support", "--catch-address", "x"), "not an email")
    [view] = cli("mailbox", "list", "--json").json()
    assert view["project"] == "HELP"


def test_the_old_participants_flags_still_work(cli: Cli, desk: list[str]) -> None:
    added = cli("mailbox", "add", "support", *desk, "--comments-from-anyone", "--json")
    assert added.code == 0, added.stderr
    assert added.json()["route_options"] == {"non_participants": "comment"}
    changed = cli("mailbox", "set", "support", "--comments-from-participants-only", "--json")
    assert changed.json()["route_options"] == {"non_participants": "new-issue"}


@pytest.mark.parametrize(
    ("reporter", "words"),
    [
        ("root", ["'root' is not an email address", "--default-reporter"]),
        ("Helpdesk <help@example.com>", ["is not an email address"]),
        ("help@example.com\r\nBcc: victim@example.org", ["is not an email address"]),
        ("help@example.com\n", ["is not an email address"]),
    ],
)
def test_a_default_reporter_must_be_an_address(cli: Cli, reporter: str, words: list[str]) -> None:
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    assert_refused(cli("project", "set", "HELP", "--default-reporter", reporter), *words)
    [project] = cli("project", "list", "--json").json()
    assert project["default_reporter"] is None
    assert cli("project", "set", "HELP", "--default-reporter", "Help@Example.com").code == 0
    assert cli("project", "list", "--json").json()[0]["default_reporter"] == "help@example.com"


def test_smtp_from_and_from_name_stay_on_one_line(cli: Cli, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("secret\n")
    server = ["--host", "127.0.0.1", "--security", "none", "--password-file", str(password)]
    bcc = "Help desk\r\nBcc: victim@example.org"
    added = cli("smtp", "add", "out", *server, "--username", "a@example.com", "--from-name", bcc)
    assert_refused(added, "--from-name", "one line")
    injected = "a@example.com\r\nBcc: victim@example.org"
    assert_refused(cli("smtp", "add", "out", *server, "--username", injected), "not an email")
    assert_refused(
        cli("smtp", "add", "out", *server, "--username", "a@example.com", "--from", injected),
        "not an email address",
    )
    assert cli("smtp", "list", "--json").json() == []
    assert cli("smtp", "add", "out", *server, "--username", "a@example.com").code == 0
    assert_refused(cli("smtp", "set", "out", "--from-name", "Help\ndesk"), "--from-name")
    assert cli("smtp", "show", "out", "--json").json()["from_name"] is None


def test_quarantine_retry_refuses_what_is_no_message_id(cli: Cli) -> None:
    assert_refused(cli("quarantine", "retry", "abc"), "Message ID 'abc' is not a number")
    assert_refused(cli("quarantine", "retry", "7", "--as-comment"), "No quarantined message 7")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--poll", "100000000000000000000"], ["--poll", "at most"]),
        (["--poll", "2147483648"], ["--poll", "at most"]),
        (["--max-message-bytes", "100000000000000000000"], ["--max-message-bytes", "at most"]),
    ],
)
def test_mailbox_numbers_past_what_can_be_stored_are_refused(
    cli: Cli, desk: list[str], args: list[str], words: list[str]
) -> None:
    assert_refused(cli("mailbox", "add", "support", *desk, *args), *words)
    assert cli("mailbox", "list", "--json").json() == []


def test_an_issue_key_no_issue_can_have_is_not_found(cli: Cli) -> None:
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    huge = "HELP-99999999999999999999999"
    assert_refused(cli("issue", "show", huge), f"No issue '{huge}'")
    assert_refused(cli("issue", "comment", huge, "--body", "x"), f"No issue '{huge}'")


def test_a_project_key_is_one_issue_keys_can_name(cli: Cli) -> None:
    # Issue keys are [A-Z][A-Z0-9_]+-[0-9]+: "H-1" names no issue, so H can be no project.
    assert_refused(cli("project", "add", "H", "--name", "Help"), "Project key 'H' is not valid")
    assert cli("project", "list", "--json").json() == []


def test_a_project_names_an_smtp_server_that_exists(cli: Cli, tmp_path: Path) -> None:
    # A typo would leave the project's notifications unsent, or sent through another server.
    assert_refused(cli("project", "add", "HELP", "--name", "Help", "--smtp", "NOPE"), "NOPE")
    assert cli("project", "list", "--json").json() == []
    assert cli("project", "add", "HELP", "--name", "Help").code == 0
    assert_refused(cli("project", "set", "HELP", "--smtp", "NOPE"), "No SMTP server 'NOPE'")
    password = tmp_path / "password"
    password.write_text("secret\n")
    server = ["--host", "127.0.0.1", "--security", "none", "--password-file", str(password)]
    assert cli("smtp", "add", "out", *server, "--username", "a@example.com").code == 0
    assert cli("project", "set", "HELP", "--smtp", "out").code == 0
    assert cli("project", "list", "--json").json()[0]["smtp"] == "out"
    assert cli("project", "set", "HELP", "--smtp", "").code == 0  # back to the default
    assert cli("project", "list", "--json").json()[0]["smtp"] is None

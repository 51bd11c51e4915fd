"""The tracker's commands as a user types them: parse, project, ingest, issue, quarantine."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Cli

DATA = Path(__file__).parents[1] / "data" / "mail"


def test_parse_prints_one_json_line_per_file_and_exit_2_for_unreadable(cli: Cli) -> None:
    result = cli("parse", str(DATA / "gmail-reply.eml"), "/nonexistent.eml", "--json")
    assert result.code == 2
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["subject"] == "Re: [HELP-42] Printer offline"
    assert first["issue_keys"] == ["HELP-42"]
    assert second["file"] == "/nonexistent.eml" and "error" in second


def test_parse_keeps_the_limits_and_says_when_a_message_is_over_them(
    cli: Cli, tmp_path: Path
) -> None:
    """`parse` parses as a mailbox would: in a parsing process, within MAILGATE_PARSE_MEMORY_MB."""
    big = tmp_path / "big.eml"
    big.write_bytes(
        b"From: a@example.net\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\n" + b"QUFB" * (12 * 1024 * 1024)
    )
    files = [str(DATA / "gmail-reply.eml"), str(big)]
    result = cli("parse", *files, "--json", MAILGATE_PARSE_MEMORY_MB="128")
    assert result.code == 2
    small, too_big = (json.loads(line) for line in result.stdout.splitlines())
    assert small["subject"] == "Re: [HELP-42] Printer offline"
    assert too_big == {
        "file": str(big),
        "error": "could not be parsed within limits: it needed more than 128 MB (twice)",
    }
    bad = cli("parse", files[0], MAILGATE_PARSE_MEMORY_MB="32")
    assert bad.code == 2
    assert bad.stderr.strip() == (
        "mailgate: MAILGATE_PARSE_MEMORY_MB is '32': give 0 (no limit) or at least 64 "
        "(a parsing process needs about 45 MB to start)."
    )


def test_ingest_then_issue_and_quarantine_commands(cli: Cli, tmp_path: Path) -> None:
    assert cli("ingest", str(DATA / "gmail-reply.eml"), "--project", "HELP").code == 2  # no project
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    message = tmp_path / "new.eml"
    message.write_bytes(
        b"From: Carol <carol@example.net>\r\nTo: support@example.com\r\n"
        b"Subject: Printer on fire\r\nMessage-ID: <c1@example.net>\r\n\r\nIt burns.\r\n"
    )
    ingested = cli(
        "ingest", str(message), str(DATA / "exchange-oof.eml"), "--project", "HELP", "--json"
    )
    assert ingested.code == 0, ingested.stderr
    assert ingested.json() == {"created": 1, "ignored": 1}
    issues = cli("issue", "list", "--json").json()
    assert [(i["key"], i["reporter"], i["comments"]) for i in issues] == [
        ("HELP-1", "carol@example.net", 0)
    ]
    commented = cli("issue", "comment", "HELP-1", "--body", "We are on it.", "--json")
    assert commented.json()["comments"][0]["body"] == "We are on it."
    shown = cli("issue", "show", "HELP-1", "--json").json()
    assert shown["description"].startswith("It burns.")
    assert cli("quarantine", "list", "--json").json() == []
    assert cli("issue", "show", "HELP-99").code == 2
    negative = cli("ingest", str(message), "--project", "HELP", "--max-attachment-bytes", "-1")
    assert negative.code == 2 and "--max-attachment-bytes cannot be negative" in negative.stderr


def test_mail_from_no_usable_address_is_held_with_the_reason(cli: Cli, tmp_path: Path) -> None:
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    assert cli("project", "set", "HELP", "--default-reporter", "desk@example.com").code == 0
    message = tmp_path / "root.eml"
    message.write_bytes(
        b"From: root\r\nTo: support@example.com\r\nCc: root, dave@example.net\r\n"
        b"Subject: cron output\r\nMessage-ID: <cron1@host>\r\n\r\nDisk full.\r\n"
    )
    ingested = cli("ingest", str(message), "--project", "HELP", "--json")
    assert ingested.json() == {"quarantined": 1}  # never filed under the default reporter
    [held] = cli("quarantine", "list", "--json").json()
    assert "From" in held["reason"] and held["issue"] is None
    listed = cli("quarantine", "list")
    assert "ISSUE" in listed.stdout.splitlines()[0]
    again = cli("quarantine", "retry", str(held["id"]))
    assert again.code == 1 and "quarantined" in again.stdout  # nothing changed: still held
    refused = cli("quarantine", "retry", str(held["id"]), "--as-comment")
    assert refused.code == 2 and "names no issue" in refused.stderr
    assert cli("issue", "list", "--json").json() == []

"""`mailgate mailbox import FILE`: many mailboxes added or changed at once, all or nothing, one
error line per bad entry; and the service function under it, on both stores."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.support.cli import Cli, Result

from mailgate.cli.mailbox import mailbox_add
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound.mailbox_import import (
    MAX_IMPORT_BYTES,
    OPTION_KINDS,
    ImportRefused,
    import_mailboxes,
    read_entries,
)
from mailgate.store.audit import events
from mailgate.store.models import Mailbox
from mailgate.tracker.service import add_project


def mailbox(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "name": f"desk-{number:03}",
        "protocol": "imap",
        "host": "127.0.0.1",
        "security": "none",
        "username": f"desk{number}@example.com",
        "password_file": "password",
        "project": "HELP",
        **changes,
    }


@pytest.fixture
def folder(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder of the commands: a project HELP exists, and a password file."""
    assert cli("project", "add", "HELP", "--name", "Help desk").code == 0
    (tmp_path / "password").write_text("s3cret-mailbox-password\n")
    monkeypatch.chdir(tmp_path)  # password_file is read relative to it
    return tmp_path


def write(folder: Path, entries: Any) -> str:
    (folder / "mailboxes.json").write_text(json.dumps(entries))
    return "mailboxes.json"


def assert_refused(result: Result, *lines: str) -> None:
    """Exit 2, nothing on stdout, and on stderr these error lines (by their start), then the
    summary."""
    assert result.code == 2 and result.stdout == "", result
    said = result.stderr.strip().splitlines()
    assert len(said) == len(lines) + 1, said
    for line, start in zip(said, lines, strict=False):
        assert line.startswith(start), (line, start)
    assert said[-1].startswith(f"mailgate: {len(lines)} of ")
    assert "nothing was imported" in said[-1]


def test_two_hundred_mailboxes_are_added_then_changed_by_a_second_import(
    cli: Cli, folder: Path
) -> None:
    first = [mailbox(n) for n in range(200)]
    imported = cli("mailbox", "import", write(folder, first), "--json")
    assert imported.code == 0, imported.stderr
    assert imported.json() == {"added": [m["name"] for m in first], "updated": []}

    again = [mailbox(n, poll=300, after="delete") for n in range(0, 200, 2)]
    again.append(mailbox(200, idle=False))
    changed = cli("mailbox", "import", write(folder, again))
    assert (changed.code, changed.stdout.strip()) == (0, "added 1, updated 100"), changed.stderr
    shown = {m["name"]: m for m in cli("mailbox", "list", "--json").json()}
    assert len(shown) == 201 and {m["auth"] for m in shown.values()} == {"password"}
    assert (shown["desk-000"]["poll_seconds"], shown["desk-000"]["after"]) == (300, "delete")
    assert (shown["desk-001"]["poll_seconds"], shown["desk-001"]["after"]) == (60, "seen")
    assert shown["desk-200"]["idle"] is False
    assert "s3cret" not in imported.stdout + changed.stdout + json.dumps(shown)


def test_three_bad_entries_among_good_ones_store_nothing(cli: Cli, folder: Path) -> None:
    entries = [mailbox(n) for n in range(10)]
    entries[2] = mailbox(2, project="NOPE")
    entries[5] = mailbox(5, password_file="missing")
    entries[7] = mailbox(7, credential=999, password_file=None)
    assert_refused(
        cli("mailbox", "import", write(folder, entries)),
        'entry 3 (name "desk-002"): No project NOPE: create it first',
        'entry 6 (name "desk-005"): The password file missing cannot be read',
        'entry 8 (name "desk-007"): No credential 999: `mailgate credential list`',
    )
    as_json = cli("mailbox", "import", "-", "--json", input=json.dumps(entries))  # stdin
    assert as_json.code == 2
    errors = as_json.json()["errors"]
    assert [(e["index"], e["name"]) for e in errors] == [
        (3, "desk-002"),
        (6, "desk-005"),
        (8, "desk-007"),
    ]
    assert errors[2]["error"].startswith("No credential 999:")
    no_array = cli("mailbox", "import", "-", input='{"name": "desk-002"}')
    assert (no_array.code, no_array.stdout) == (2, "")
    assert no_array.stderr.startswith("mailgate: Standard input is not a JSON array of objects")
    assert len(no_array.stderr.strip().splitlines()) == 1
    assert cli("mailbox", "list", "--json").json() == []


@pytest.fixture
async def desk(ctx: Context) -> Context:
    await add_project(ctx, "HELP", "Help desk")
    return ctx


def api_entry(number: int, **changes: Any) -> dict[str, Any]:
    """An entry as the API takes it: the password itself, no file."""
    entry = {**mailbox(number), "password": "s3cret-mailbox-password"}
    del entry["password_file"]
    return {**entry, **changes}


async def refusal(ctx: Context, entries: list[Any]) -> list[str]:
    with pytest.raises(ImportRefused) as refused:
        await import_mailboxes(ctx, entries)

    def count(session: Session) -> int:
        return len(session.scalars(select(Mailbox.id)).all())

    assert await ctx.db.run(count) == 0  # all or nothing
    return [problem.line() for problem in refused.value.problems]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"colour": "red"}, 'unknown key "colour": the keys are the long options of `mailbox add`'),
        ({"port": "993"}, '"port" must be a whole number, not "993".'),
        ({"idle": "yes"}, '"idle" must be true or false, not "yes".'),
        ({"password": 7}, '"password" must be a string.'),
        ({"password_file": "/etc/passwd"}, 'unknown key "password_file"'),  # no server file
        ({"folder": "x" * 256}, '"folder" is longer than 255 characters'),
        ({"non_participants": "sometimes"}, "Unknown value 'sometimes': use new-issue, hold"),
        ({"catch_address": "notanemail"}, "'notanemail' is not an email address"),
        ({"credential": 0, "password": None}, '"credential" 0 is not a credential\'s ID'),
        ({"credential": 42, "password": None}, "No credential 42: `mailgate credential list`"),
    ],
    ids=[
        "unknown key",
        "port",
        "idle",
        "password",
        "password file",
        "folder",
        "handler option",
        "catch address",
        "credential id",
        "no such credential",
    ],
)
async def test_an_entry_is_checked_as_mailbox_add_checks_it(
    desk: Context, entry: dict[str, Any], error: str
) -> None:
    lines = await refusal(desk, [api_entry(1), api_entry(2, **entry)])
    assert len(lines) == 1 and lines[0].startswith(f'entry 2 (name "desk-002"): {error}')


async def test_an_unknown_key_is_told_every_key_there_is(desk: Context) -> None:
    [line] = await refusal(desk, [api_entry(1, colour="red")])
    for key in ("name", "password", "max_attachments_bytes", "poll", "after", "sasl"):
        assert f" {key}," in line or f" {key}." in line, key
    assert "password_file" not in line


async def test_a_name_given_twice_and_entries_that_are_no_mailbox_are_errors(
    desk: Context,
) -> None:
    entries = [api_entry(1), api_entry(2), api_entry(1, poll=120), 7, {"host": "x"}]
    assert await refusal(desk, entries) == [
        'entry 3 (name "desk-001"): entry 1 has this name too: give each mailbox once.',
        "entry 4: not a JSON object: give one object per mailbox.",
        'entry 5: no "name": give each mailbox its name.',
    ]


async def test_a_password_is_never_in_an_error(desk: Context) -> None:
    lines = await refusal(desk, [api_entry(1, password="s3cret\nline", project="NOPE")])
    assert lines == [
        'entry 1 (name "desk-001"): No project NOPE: create it first with `mailgate project add '
        "NOPE --name NAME`."
    ]
    lines = await refusal(desk, [api_entry(1, password=["s3cret"])])
    assert "s3cret" not in lines[0]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not json", "is not JSON"),
        (b'{"name": "support"}', "is not a JSON array of objects"),
        (b"[]", "holds no mailboxes"),
        (b"[" * 100_000 + b"]" * 100_000, "is not JSON"),  # deeper than the parser goes
        (b"[" + b" " * MAX_IMPORT_BYTES + b"]", "is larger than 4 MB"),
        (b"\xff[]", "is not JSON"),
    ],
    ids=["not json", "object", "empty", "deep", "too large", "not utf-8"],
)
def test_what_is_no_array_of_objects_is_refused(content: bytes, words: str) -> None:
    with pytest.raises(BadInput) as refused:
        read_entries(content, "The file mailboxes.json")
    assert str(refused.value).startswith(f"The file mailboxes.json {words}")


def test_the_keys_are_the_long_options_of_mailbox_add() -> None:
    """A new option of `mailbox add` is a key of an import too, of the same type."""
    hints = typing.get_type_hints(mailbox_add)
    options = {name for name in hints if name not in ("return", "as_json")}
    assert options == {"name", "password_file", *OPTION_KINDS} - {"password"}
    for name, kind in OPTION_KINDS.items():
        if name not in ("password", "credential"):  # the CLI reads a file, parses an ID
            assert typing.get_args(hints[name])[0] is kind, name


@pytest.mark.stores("sqlite", "postgresql")
async def test_an_import_is_one_transaction_with_the_passwords_encrypted(desk: Context) -> None:
    def read(path: str) -> str:
        assert path == "password"
        return "s3cret-mailbox-password"

    done = await import_mailboxes(desk, [mailbox(n) for n in range(200)], read_password=read)
    assert (len(done.added), done.updated) == (200, [])

    def stored(session: Session) -> list[tuple[str | None, int]]:
        query = select(Mailbox.password_enc, Mailbox.poll_seconds).order_by(Mailbox.name)
        return [(sealed, poll) for sealed, poll in session.execute(query)]

    rows = await desk.db.run(stored)
    assert len(rows) == 200 and all(sealed and "s3cret" not in sealed for sealed, _ in rows)
    assert desk.secrets.decrypt(rows[0][0] or "") == "s3cret-mailbox-password"

    changes = [{"name": f"desk-{n:03}", "poll": 120} for n in range(200)]
    with pytest.raises(ImportRefused) as refused:
        await import_mailboxes(desk, [*changes, mailbox(300, project="NOPE")])
    assert [p.index for p in refused.value.problems] == [201]
    assert {poll for _, poll in await desk.db.run(stored)} == {60}  # no change was kept

    done = await import_mailboxes(desk, changes)
    assert (done.added, len(done.updated)) == ([], 200)
    assert {poll for _, poll in await desk.db.run(stored)} == {120}
    logged = await desk.db.run(lambda session: events(session, action="mailbox."))
    assert [(e.action, (e.detail or "").split(";")[0]) for e in logged] == [
        ("mailbox.import", "added 0, updated 200"),
        ("mailbox.import", "added 200, updated 0"),
    ]

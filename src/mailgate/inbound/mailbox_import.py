"""Many mailboxes added or changed in one step: `mailgate mailbox import FILE` and
`POST /api/v1/mailboxes/import`.

An entry is a JSON object whose keys are the long options of `mailbox add` without dashes
(`OPTION_KINDS`). Every entry is checked by the rules of `mailbox add` (a new name) or
`mailbox set` (an existing one), in `inbound/mailboxes.py`; when any entry is wrong nothing is
stored and each bad entry has one line: `entry 3 (name "sales"): No project NOPE: …`. All the
entries are written in one transaction with one audit event, and no connection is tried (that is
`mailbox test`): a thousand mailboxes take a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound.mailboxes import (
    ROUTE_OPTIONS,
    MailboxOptions,
    stage_mailbox_change,
    stage_new_mailbox,
)
from mailgate.store import audit
from mailgate.store.models import Mailbox, Project

# An import is read whole and checked in one transaction: a file of a thousand mailboxes is
# some 300 KB, so 4 MB leaves room and still bounds what one transaction holds.
MAX_IMPORT_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 10_000
# A text value with no column of its own to bound it (the handler's options are stored as JSON).
_LONGEST_TEXT = 2000

# The long options of `mailbox add` without dashes — the CLI's flags, the API's fields, the
# keys of an import entry besides `name` — and the JSON value each takes. `password` is what
# the file of `--password-file` holds (the API takes the password itself, never a file).
OPTION_KINDS: dict[str, type] = {
    "protocol": str,
    "host": str,
    "port": int,
    "security": str,
    "username": str,
    "credential": int,
    "password": str,
    "folder": str,
    "ca_file": str,
    "project": str,
    "handler": str,
    "after": str,
    "poll": int,
    "idle": bool,
    "backlog": str,
    "sasl": str,
    "max_message_bytes": int,
    "bulk": str,
    "non_participants": str,
    "comments_from_participants_only": bool,
    "cc_watchers": bool,
    "max_cc_watchers": int,
    "keys_of_other_projects": bool,
    "max_comments_per_issue_hour": int,
    "catch_address": str,
    "create_customers": bool,
    "whole_body": bool,
    "split_regex": str,
    "quarantine_dmarc_fail": bool,
    "max_per_sender_hour": int,
    "max_attachment_bytes": int,
    "max_attachments_bytes": int,
}
# The options that set a MailboxOptions field of another name; the handler's options
# (ROUTE_OPTIONS) go to its `route`.
_FIELD_OF = {"credential": "credential_id", "poll": "poll_seconds", "sasl": "sasl_mechanism"}
_SECRET_KEYS = frozenset({"password", "password_file"})
_MAX_ID = 2**31 - 1  # ids are 32-bit integers in every database mailgate runs on
_NAMES_IN_AUDIT = 20


def mailbox_options_of(given: Mapping[str, Any]) -> MailboxOptions:
    """MailboxOptions from values keyed by the long options of `mailbox add` without dashes
    (`OPTION_KINDS`; other keys are not options and are left out). None is "not given"."""
    fields = {
        _FIELD_OF.get(key, key): value
        for key, value in given.items()
        if key in OPTION_KINDS and key not in ROUTE_OPTIONS and value is not None
    }
    route = {name: given[name] for name in ROUTE_OPTIONS if given.get(name) is not None}
    return MailboxOptions(**fields, route=route)


@dataclass(frozen=True)
class EntryProblem:
    """Why one entry of an import is wrong; `index` counts from 1, as the error lines do."""

    index: int
    name: str | None
    error: str

    def line(self) -> str:
        label = f"entry {self.index}"
        if self.name is not None:
            label += f" (name {json.dumps(self.name[:100])})"
        return f"{label}: {self.error}"

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "error": self.error}


class ImportRefused(BadInput):
    """Some entries of an import are wrong, and nothing was stored: one line per bad entry."""

    def __init__(self, problems: list[EntryProblem], entries: int) -> None:
        super().__init__("\n".join(problem.line() for problem in problems))
        self.problems = problems
        self.summary = (
            f"{len(problems)} of {entries} entries are wrong, so nothing was imported: fix "
            "them and import again."
        )


@dataclass
class ImportResult:
    """The names of the mailboxes added and of those changed, and warnings for the admin."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, list[str]]:
        return {"added": self.added, "updated": self.updated}

    def summary(self) -> str:
        return f"added {len(self.added)}, updated {len(self.updated)}"


def read_entries(data: bytes, source: str) -> list[Any]:
    """The entries of an import: `data` must be a JSON array of objects, at most
    MAX_IMPORT_BYTES. `source` names it in a sentence ("The file mailboxes.json")."""
    if len(data) > MAX_IMPORT_BYTES:
        raise BadInput(
            f"{source} is larger than {MAX_IMPORT_BYTES // 2**20} MB: split it into several "
            "imports."
        )
    try:
        entries = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # the last: nested too deep
        raise BadInput(
            f"{source} is not JSON: give a JSON array of mailboxes, one object each."
        ) from None
    if not isinstance(entries, list):
        raise BadInput(
            f'{source} is not a JSON array of objects: give [{{"name": "support", …}}, …], '
            "one object per mailbox."
        )
    if not entries:
        raise BadInput(f"{source} holds no mailboxes: give one object per mailbox in the array.")
    if len(entries) > MAX_ENTRIES:
        raise BadInput(
            f"{source} holds {len(entries)} mailboxes, more than {MAX_ENTRIES} at once: split it "
            "into several imports."
        )
    return entries


async def import_mailboxes(
    ctx: Context,
    entries: Sequence[Any],
    *,
    read_password: Callable[[str], str] | None = None,
) -> ImportResult:
    """Add the entries whose names are new and change the others as `mailbox set` does, all in
    one transaction, or nothing: ImportRefused lists every bad entry.

    With `read_password` (the CLI) an entry names a `password_file`, read by it; without (the
    API) an entry gives the `password` itself."""
    secret = "password" if read_password is None else "password_file"
    problems: list[EntryProblem] = []
    checked: list[tuple[int, str, MailboxOptions]] = []
    first_of: dict[str, int] = {}
    for index, entry in enumerate(entries, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        name = name if isinstance(name, str) else None
        try:
            values = _entry_values(entry, secret)
            if values["name"] in first_of:
                raise BadInput(
                    f"entry {first_of[values['name']]} has this name too: give each mailbox once."
                )
            first_of[values["name"]] = index
            if read_password is not None and values.get("password_file") is not None:
                values["password"] = read_password(values["password_file"])
            checked.append((index, values["name"], mailbox_options_of(values)))
        except BadInput as error:
            problems.append(EntryProblem(index, name, str(error)))
    async with ctx.db.session() as session:
        result = await _stage(ctx, session, checked, problems)
        if problems:
            await session.rollback()
            raise ImportRefused(sorted(problems, key=lambda p: p.index), len(entries))
        audit.record(
            session.sync_session, ctx.clock(), "mailbox.import", None, _audit_detail(result)
        )
        try:
            await session.commit()
        except IntegrityError:
            raise BadInput(
                "Another change added one of these mailboxes while they were being imported: "
                "import again (it changes those that exist now)."
            ) from None
    return result


async def _stage(
    ctx: Context,
    session: AsyncSession,
    checked: list[tuple[int, str, MailboxOptions]],
    problems: list[EntryProblem],
) -> ImportResult:
    """Add or change each mailbox in `session` (nothing committed), adding to `problems` the
    entries `mailbox add` or `mailbox set` refuses."""
    existing = await _existing(session, [name for _, name, _ in checked])
    projects = frozenset(await session.scalars(select(Project.key)))
    result = ImportResult()
    warned: dict[str, list[str]] = {}
    # Nothing is written before the commit: one INSERT for all the new rows, and no half-changed
    # row of a bad entry reaches the database.
    with session.no_autoflush:
        for index, name, options in checked:
            row = existing.get(name)
            try:
                if row is None:
                    _, warnings = await stage_new_mailbox(
                        ctx, session, name, options, audited=False, projects=projects
                    )
                    result.added.append(name)
                else:
                    warnings = await stage_mailbox_change(
                        ctx, session, row, options, audited=False, projects=projects
                    )
                    result.updated.append(name)
            except BadInput as error:
                problems.append(EntryProblem(index, name, str(error)))
                continue
            for warning in warnings:
                warned.setdefault(warning, []).append(name)
    result.warnings = [f"{_some(names)}: {warning}" for warning, names in warned.items()]
    return result


async def _existing(session: AsyncSession, names: list[str]) -> dict[str, Mailbox]:
    """The stored mailboxes of these names, read a few hundred names per query."""
    found: dict[str, Mailbox] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        rows = await session.scalars(select(Mailbox).where(Mailbox.name.in_(chunk)))
        found.update((row.name, row) for row in rows)
    return found


def _entry_values(entry: object, secret: str) -> dict[str, Any]:
    """An entry's values by option name, each of its option's type; `secret` is the key that
    gives the password (`password` or `password_file`)."""
    if not isinstance(entry, dict):
        raise BadInput("not a JSON object: give one object per mailbox.")
    kinds = {"name": str, **{secret if k == "password" else k: v for k, v in OPTION_KINDS.items()}}
    values: dict[str, Any] = {}
    for key, value in entry.items():
        option = key.replace("-", "_")
        if option not in kinds:
            raise BadInput(
                f"unknown key {json.dumps(key[:40])}: the keys are the long options of "
                f"`mailbox add` without dashes: {', '.join(kinds)}."
            )
        if option in values:
            raise BadInput(f'the key "{option}" is given twice: give it once.')
        values[option] = _checked(option, value, kinds[option])
    if not isinstance(values.get("name"), str):
        raise BadInput('no "name": give each mailbox its name.')
    return values


def _checked(option: str, value: object, kind: type) -> Any:
    """`value` if it is JSON of the option's kind (null: not given), else BadInput."""
    if value is None:
        return None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        if option == "credential" and not 1 <= value <= _MAX_ID:
            raise BadInput(
                f'"credential" {value} is not a credential\'s ID: `mailgate credential list` '
                "shows the IDs."
            )
        return value
    if kind is str and isinstance(value, str):
        longest = _longest(option)
        if len(value) > longest:
            raise BadInput(f'"{option}" is longer than {longest} characters: shorten it.')
        return value
    wanted = {bool: "true or false", int: "a whole number"}.get(kind, "a string")
    if option in _SECRET_KEYS:
        raise BadInput(f'"{option}" must be {wanted}.')  # never the secret's value
    raise BadInput(f'"{option}" must be {wanted}, not {json.dumps(value)[:40]}.')


def _longest(option: str) -> int:
    """The longest text the option takes: its column's width, where it has a column."""
    column = Mailbox.__table__.columns.get(option)
    if column is not None and isinstance(column.type, String) and column.type.length:
        return int(column.type.length)
    return _LONGEST_TEXT


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_IN_AUDIT])
    more = len(names) - _NAMES_IN_AUDIT
    return f"{shown} and {more} more" if more > 0 else shown


def _audit_detail(result: ImportResult) -> str:
    """How many mailboxes the import added and changed, and (the first few of) their names."""
    detail = result.summary()
    if result.added:
        detail += f"; added: {_some(result.added)}"
    if result.updated:
        detail += f"; updated: {_some(result.updated)}"
    return detail

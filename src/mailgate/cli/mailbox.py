"""`mailgate mailbox`: incoming mail servers (IMAP, POP3), their connection test, a poll on
demand, and many added at once from a file."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate.cli.common import (
    AttachmentOpt,
    AttachmentsOpt,
    CaFileOpt,
    CredentialOpt,
    JsonFlag,
    PasswordFileOpt,
    SaslOpt,
    emit,
    fail,
    key_values,
    run,
    same_options,
    save_and_show,
    steps_text,
    table,
    warn,
)
from mailgate.cli.mailbox_options import (
    MbAfterOpt,
    MbBacklogOpt,
    MbBulkOpt,
    MbCatchOpt,
    MbCcOpt,
    MbCommentRateOpt,
    MbCustomersOpt,
    MbDmarcOpt,
    MbFloodOpt,
    MbFolderOpt,
    MbHandlerOpt,
    MbHostOpt,
    MbIdleOpt,
    MbMaxCcOpt,
    MbMaxOpt,
    MbNonParticipantsOpt,
    MbOtherKeysOpt,
    MbParticipantsOpt,
    MbPollOpt,
    MbPortOpt,
    MbProjectOpt,
    MbProtocolOpt,
    MbSecurityOpt,
    MbSplitOpt,
    MbUserOpt,
    MbWholeOpt,
    mailbox_options,
)
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound.mailboxes import (
    ImportEntry,
    add_mailbox,
    delete_mailbox,
    get_mailbox,
    import_mailboxes,
    list_mailboxes,
    mailbox_view,
    set_mailbox,
)
from mailgate.runtime.poll import poll_mailbox
from mailgate.runtime.probe import ProbeResult, probe

app = typer.Typer(
    help="Incoming mail servers (IMAP, POP3) read with OAuth 2.0.", no_args_is_help=True
)


async def _save_mailbox(
    ctx: Context, name: str, values: dict[str, Any], *, new: bool
) -> tuple[dict[str, Any], list[str]]:
    save = add_mailbox if new else set_mailbox
    row, warnings = await save(ctx, name, mailbox_options(values))
    return mailbox_view(row), warnings


@app.command("add")
def mailbox_add(
    name: str,
    protocol: MbProtocolOpt = None,
    host: MbHostOpt = None,
    port: MbPortOpt = None,
    security: MbSecurityOpt = None,
    username: MbUserOpt = None,
    credential: CredentialOpt = None,
    password_file: PasswordFileOpt = None,
    folder: MbFolderOpt = None,
    ca_file: CaFileOpt = None,
    project: MbProjectOpt = None,
    handler: MbHandlerOpt = None,
    after: MbAfterOpt = None,
    poll: MbPollOpt = None,
    idle: MbIdleOpt = None,
    backlog: MbBacklogOpt = None,
    sasl: SaslOpt = None,
    max_message_bytes: MbMaxOpt = None,
    bulk: MbBulkOpt = None,
    non_participants: MbNonParticipantsOpt = None,
    comments_from_participants_only: MbParticipantsOpt = None,
    cc_watchers: MbCcOpt = None,
    max_cc_watchers: MbMaxCcOpt = None,
    keys_of_other_projects: MbOtherKeysOpt = None,
    max_comments_per_issue_hour: MbCommentRateOpt = None,
    catch_address: MbCatchOpt = None,
    create_customers: MbCustomersOpt = None,
    whole_body: MbWholeOpt = None,
    split_regex: MbSplitOpt = None,
    quarantine_dmarc_fail: MbDmarcOpt = None,
    max_per_sender_hour: MbFloodOpt = None,
    max_attachment_bytes: AttachmentOpt = None,
    max_attachments_bytes: AttachmentsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an incoming mail server (IMAP or POP3)."""
    save_and_show(_save_mailbox, dict(locals()), new=True)


@app.command("set")
@same_options(mailbox_add)
def mailbox_set(values: dict[str, Any]) -> None:
    """Change a mailbox; it keeps its UID state, so no mail is taken twice."""
    save_and_show(_save_mailbox, values, new=False)


@app.command("import")
def mailbox_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="A JSON array of objects whose keys are the long options of `mailbox add` "
            'without dashes: [{"name": "support", "protocol": "imap", "host": …}, …].'
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add or change many mailboxes at once, all or nothing: an existing name is changed as by
    `mailbox set`; every entry is checked as `mailbox add` checks it (one error line per bad
    entry, and nothing stored)."""
    entries = _import_entries(file)

    async def work(ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
        saved = await import_mailboxes(ctx, entries)
        return [mailbox_view(row) for row, _ in saved], [w for _, ws in saved for w in ws]

    views, warnings = run(work)
    warn(warnings)
    emit(
        views,
        as_json,
        lambda: f"imported {len(views)} mailbox(es): " + ", ".join(v["name"] for v in views),
    )


def _import_entries(file: Path) -> list[ImportEntry]:
    """The entries of an import file, each with its options or with why it
    cannot be read as options."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(BadInput(f"The file {file} cannot be read ({exc.strerror}): give a readable file."))
    except (UnicodeDecodeError, ValueError, RecursionError):  # the last: nested too deep
        fail(BadInput(f"{file} is not JSON: give a JSON array of mailboxes, one object each."))
    if not isinstance(data, list) or not data:
        fail(BadInput(f'{file} holds no JSON array of mailboxes: give [{{"name": …}}, …].'))
    entries: list[ImportEntry] = []
    names: set[str] = set()
    for number, entry in enumerate(data, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"entry {number}" + (f" ({name})" if isinstance(name, str) else "")
        try:
            values = _import_values(entry)
            if values["name"] in names:
                raise BadInput(f"the name {values['name']!r} is given twice in the file.")
            names.add(values["name"])
            entries.append(ImportEntry(label, values["name"], mailbox_options(values)))
        except BadInput as error:
            entries.append(ImportEntry(label, problem=str(error)))
    return entries


def _import_values(entry: object) -> dict[str, Any]:
    """An import entry as the arguments `mailbox add` would get, each of the option's type."""
    if not isinstance(entry, dict):
        raise BadInput("not a JSON object: give one object per mailbox.")
    hints = typing.get_type_hints(mailbox_add)
    values: dict[str, Any] = {name: None for name in hints if name not in ("return", "as_json")}
    for key, value in entry.items():
        name = str(key).replace("-", "_")
        if name not in values:
            raise BadInput(
                f"unknown key {key!r}: use the long options of `mailbox add` without dashes "
                "(name, protocol, host, port, username, credential, project, …)."
            )
        values[name] = _import_value(name, value, hints[name])
    if not isinstance(values["name"], str):
        raise BadInput('no "name": give each mailbox its name.')
    return {**values, "as_json": False}


def _import_value(name: str, value: object, hint: Any) -> Any:
    """`value` as the type of the option `name` (`hint`: its annotation)."""
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    if value is None:
        return None
    if name == "credential" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an ID given as a number
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, Path) and isinstance(value, str):
        return kind(value)
    wanted = {bool: "true or false", int: "a number"}.get(kind, "a string")
    raise BadInput(f'"{name}" must be {wanted}, not {json.dumps(value)[:40]}.')


@app.command("list")
def mailbox_list(as_json: JsonFlag = False) -> None:
    """List mailboxes with their status."""

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [mailbox_view(row) for row in await list_mailboxes(ctx)]

    views = run(work)
    emit(
        views,
        as_json,
        lambda: table(
            views,
            ["name", "protocol", "host", "username", "auth", "project", "status", "last_error"],
        ),
    )


@app.command("show")
def mailbox_show(name: str, as_json: JsonFlag = False) -> None:
    """Show a mailbox."""

    async def work(ctx: Context) -> dict[str, Any]:
        async with ctx.db.session() as session:
            return mailbox_view(await get_mailbox(session, name))

    view = run(work)
    warn(view["warnings"])
    emit(view, as_json, lambda: key_values(view))


@app.command("test")
def mailbox_test(name: str, as_json: JsonFlag = False) -> None:
    """Test connection: resolve, connect, TLS, greeting, token, authenticate, select, count."""

    async def work(ctx: Context) -> ProbeResult:
        return await probe(ctx, name)

    result = run(work)
    emit(result.as_json(), as_json, lambda: steps_text(result))
    raise typer.Exit(0 if result.ok else 1)


@app.command("poll")
def mailbox_poll(
    name: str,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be taken; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Take everything there now (finishing post-actions a crash left pending), then exit."""

    report = run(lambda ctx: poll_mailbox(ctx, name, dry_run=dry_run))
    emit(
        report.as_json(dry_run=dry_run),
        as_json,
        lambda: (
            f"would take {len(report.would_take)} message(s): UIDs {report.would_take}"
            if dry_run
            else f"took {len(report.taken)} message(s), quarantined {len(report.quarantined)}, "
            f"finished {report.post_actions_finished} pending post-action(s)"
        ),
    )


@app.command("delete")
def mailbox_delete(name: str) -> None:
    """Delete a mailbox (the mail on the server is not touched)."""
    run(lambda ctx: delete_mailbox(ctx, name))
    typer.echo(f"deleted mailbox {name}")

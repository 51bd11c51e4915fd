"""`mailgate mailbox`: incoming mail servers (IMAP, POP3), their connection test, a poll on
demand, and many added at once from a file."""

from __future__ import annotations

import json
import sys
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
    read_password,
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
from mailgate.inbound.mailbox_import import (
    MAX_IMPORT_BYTES,
    ImportRefused,
    ImportResult,
    import_mailboxes,
    read_entries,
)
from mailgate.inbound.mailboxes import (
    add_mailbox,
    delete_mailbox,
    get_mailbox,
    list_mailboxes,
    mailbox_view,
    set_mailbox,
)
from mailgate.logs import redact_text
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
        str,
        typer.Argument(
            help="A JSON array of objects whose keys are the long options of `mailbox add` "
            'without dashes: [{"name": "support", "protocol": "imap", "host": …}, …]; '
            "- reads standard input.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add or change many mailboxes at once, all or nothing: a new name is added as by
    `mailbox add`, an existing one changed as by `mailbox set`; when any entry is wrong,
    nothing is stored and each bad entry has an error line."""
    entries = _import_entries(file)

    async def work(ctx: Context) -> ImportResult | ImportRefused:
        try:
            return await import_mailboxes(
                ctx, entries, read_password=lambda path: read_password(Path(path)) or ""
            )
        except ImportRefused as refused:
            return refused

    outcome = run(work)
    if isinstance(outcome, ImportRefused):
        if as_json:
            typer.echo(json.dumps({"errors": [p.as_json() for p in outcome.problems]}))
        else:
            for problem in outcome.problems:
                typer.echo(redact_text(problem.line()), err=True)
        fail(BadInput(outcome.summary))
    warn(outcome.warnings)
    emit(outcome.as_json(), as_json, outcome.summary)


def _import_entries(file: str) -> list[Any]:
    """The entries of the import file (`-`: standard input), read no further than the limit."""
    if file == "-":
        return _read_entries(sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1), "Standard input")
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        fail(BadInput(f"The file {file} cannot be read ({exc.strerror}): give a readable file."))
    return _read_entries(data, f"The file {file}")


def _read_entries(data: bytes, source: str) -> list[Any]:
    try:
        return read_entries(data, source)
    except BadInput as error:
        fail(error)


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

"""Service functions for mailboxes (incoming mail servers): add, change, show, delete.

The CLI, the web UI and the API call these. `mailbox set` keeps the UID state: a mailbox that
changes its credential or poll interval does not take its mail again.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import names
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.inbound.handle import Destination
from mailgate.inbound.route import BULK_ACTIONS, HANDLERS, NON_PARTICIPANTS, RouteOptions
from mailgate.mail import utf7
from mailgate.mail.endpoints import (
    changed_settings,
    choose,
    endpoint_view,
    iso,
    password_warnings,
    resolve_endpoint,
    settings_of,
    uses_oauth_only_host,
)
from mailgate.mail.smtp_servers import check_address
from mailgate.store import audit
from mailgate.store.models import Mailbox, Project
from mailgate.store.vocabulary import Backlog, Handler, MailboxStatus, Protocol

PROTOCOLS = tuple(Protocol)
BACKLOGS = tuple(Backlog)
DEFAULT_PORTS = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "ssl"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
}
DEFAULT_POLL_SECONDS = 60
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MIN_POLL_SECONDS = 5
MAX_POLL_SECONDS = 7 * 24 * 3600
# What the column holds everywhere (a 32-bit integer on PostgreSQL; past 2**63 SQLite's driver
# raises instead of storing).
MAX_MESSAGE_BYTES = 2**31 - 1
_PROJECT_RE = re.compile(r"[A-Z][A-Z0-9_]{1,49}")


# The handler's options a mailbox stores as given, in `route_options` (`inbound.route`): the
# `mailbox add` flags and the API's fields of the same names.
ROUTE_OPTIONS = (
    "bulk",
    "non_participants",
    "comments_from_participants_only",
    "cc_watchers",
    "max_cc_watchers",
    "keys_of_other_projects",
    "max_comments_per_issue_hour",
    "catch_address",
    "create_customers",
    "whole_body",
    "split_regex",
    "quarantine_dmarc_fail",
    "max_per_sender_hour",
    "max_attachment_bytes",
    "max_attachments_bytes",
)


@dataclass
class MailboxOptions:
    """What the admin gave; None means "not given" (keep the current value or the default)."""

    protocol: str | None = None
    host: str | None = None
    port: int | None = None
    security: str | None = None
    username: str | None = None
    credential_id: int | None = None
    password: str | None = None
    folder: str | None = None
    ca_file: str | None = None
    project: str | None = None
    handler: str | None = None
    after: str | None = None
    poll_seconds: int | None = None
    idle: bool | None = None
    backlog: str | None = None
    sasl_mechanism: str | None = None
    max_message_bytes: int | None = None
    route: dict[str, Any] | None = None  # handler options (inbound.route.RouteOptions) given

    def __repr__(self) -> str:  # never show the password
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        if "password" in given:
            given["password"] = "<hidden>"
        return f"MailboxOptions({given})"


def check_after(after: str, protocol: str) -> str:
    """`seen`, `delete` or `move:FOLDER`; POP3 has no folders and no flags to set."""
    if after in ("seen", "delete"):
        return after
    if after.startswith("move:") and after[5:].strip():
        if protocol == "pop3":
            raise BadInput("POP3 has no folders to move mail to: use --after seen or delete.")
        return "move:" + check_folder(after[5:].strip(), "--after move:FOLDER")
    raise BadInput(
        f"Unknown after-processing action {after!r}: use seen, delete or move:FOLDER (--after)."
    )


def check_folder(folder: str, option: str) -> str:
    """An IMAP folder as the admin gives it: its name as mail clients show it, in Unicode
    (`mail/imap.py` encodes it for the server)."""
    try:
        utf7.check_name(folder)
    except ValueError as exc:
        raise BadInput(
            f"The folder {folder!r} cannot be an IMAP folder's name ({exc}): give the name as "
            f"your mail client shows it ({option})."
        ) from None
    return folder


def _folder_warnings(row: Mailbox) -> list[str]:
    """A folder given in its encoded form ("Best&AOQ-tigt") would be encoded again."""
    moved = row.after[5:] if row.after and row.after.startswith("move:") else None
    return [
        f"The folder {folder} looks like the encoded form of {decoded}: mailgate encodes "
        f"names itself, so give {decoded} if that is the folder meant."
        for folder in (row.folder, moved)
        if folder and (decoded := utf7.encoded_form_of(folder))
    ]


async def _resolve(
    ctx: Context,
    session: AsyncSession,
    row: Mailbox,
    opts: MailboxOptions,
    projects: Collection[str] | None = None,
) -> list[str]:
    """Fill `row` from the options, check it whole, and return warnings for the admin.
    `projects`: the keys of every project, when the caller has read them (an import checks
    a thousand mailboxes with one query)."""
    warnings: list[str] = []
    if opts.protocol is not None:
        row.protocol = choose(opts.protocol, PROTOCOLS, "protocol", "--protocol") or row.protocol
    if not row.protocol:
        raise BadInput("No protocol given: use --protocol imap or pop3.")
    warnings.extend(
        await resolve_endpoint(
            ctx,
            session,
            row,
            opts,
            default_port=lambda security: DEFAULT_PORTS[(row.protocol, security)],
            reset_port=opts.protocol is not None,
            login_hint="the mailbox address",
        )
    )
    if opts.folder is not None:
        if not opts.folder.strip():
            raise BadInput("The folder is empty: give the IMAP folder to read, e.g. INBOX.")
        row.folder = check_folder(opts.folder.strip(), "--folder")
    row.folder = row.folder or "INBOX"
    if row.protocol == "pop3" and row.folder.upper() != "INBOX":
        raise BadInput("POP3 reads the inbox only: leave out --folder, or use IMAP.")
    if opts.project is not None:
        if not _PROJECT_RE.fullmatch(opts.project):
            raise BadInput(
                f"Project key {opts.project!r} is not valid: use 2 to 50 capital letters, digits and _, starting with a letter (e.g. HELP)."
            )
        if projects is not None:
            exists = opts.project in projects
        else:
            found = await session.scalar(select(Project.id).where(Project.key == opts.project))
            exists = found is not None
        if not exists:
            raise NotFound(
                f"No project {opts.project}: create it first with `mailgate project add "
                f"{opts.project} --name NAME`."
            )
        row.project = opts.project
    if not row.project:
        raise BadInput("No project given: use --project KEY for the project mail lands in.")
    row.handler = (
        choose(opts.handler, HANDLERS, "handler", "--handler")
        or row.handler
        or Handler.CREATE_OR_COMMENT
    )
    row.after = check_after(
        opts.after if opts.after is not None else (row.after or "seen"), row.protocol
    )
    if opts.folder is not None or opts.after is not None:
        warnings.extend(_folder_warnings(row))
    if opts.password is not None and any(character in opts.password for character in "\r\n\0"):
        raise BadInput(
            "The password holds a line break or a NUL character, which IMAP and POP3 logins "
            "cannot send: give a file holding the password on one line (--password-file)."
        )
    if opts.poll_seconds is not None:
        if opts.poll_seconds < MIN_POLL_SECONDS:
            raise BadInput(
                f"A poll interval of {opts.poll_seconds} s is too short: use at least {MIN_POLL_SECONDS} s (IMAP IDLE delivers new mail at once anyway)."
            )
        if opts.poll_seconds > MAX_POLL_SECONDS:
            raise BadInput(
                f"A poll interval of {opts.poll_seconds} s is too long: use at most "
                f"{MAX_POLL_SECONDS} s, a week (--poll)."
            )
        row.poll_seconds = opts.poll_seconds
    row.poll_seconds = row.poll_seconds or DEFAULT_POLL_SECONDS
    if row.poll_seconds < 60 and uses_oauth_only_host(row.host):
        warnings.append(
            f"{row.host}: polling more than once a minute can be throttled; IMAP IDLE is used when offered."
        )
    if opts.idle is not None:
        row.idle = opts.idle
    row.backlog = (
        choose(opts.backlog, BACKLOGS, "backlog policy", "--backlog")
        or row.backlog
        or Backlog.UNSEEN
    )
    if opts.max_message_bytes is not None:
        if opts.max_message_bytes < 1024:
            raise BadInput(
                "The size limit is below 1 KiB: give a limit in bytes, e.g. 26214400 for 25 MB."
            )
        if opts.max_message_bytes > MAX_MESSAGE_BYTES:
            raise BadInput(
                f"The size limit is over 2 GiB: give at most {MAX_MESSAGE_BYTES} bytes "
                "(--max-message-bytes)."
            )
        row.max_message_bytes = opts.max_message_bytes
    row.max_message_bytes = row.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
    if opts.route:
        row.route_options = {**(row.route_options or {}), **check_route_options(opts.route)}
    return warnings


def check_route_options(given: dict[str, Any]) -> dict[str, Any]:
    """Validate handler options; only the ones given are stored. The old
    `comments_from_participants_only` (True or False) is `non_participants` new-issue or
    comment."""

    checked = dict(given)
    if "comments_from_participants_only" in checked:
        alias = "new-issue" if checked.pop("comments_from_participants_only") else "comment"
        if checked.setdefault("non_participants", alias) != alias:
            raise BadInput(
                "--non-participants and --comments-from-participants-only/--comments-from-anyone "
                "disagree: give --non-participants alone."
            )
    if "non_participants" in checked:
        choose(checked["non_participants"], NON_PARTICIPANTS, "value", "--non-participants")
    if "bulk" in checked:
        bulk = checked["bulk"]
        if bulk.startswith("forward:"):
            checked["bulk"] = "forward:" + check_address(bulk[8:], "--bulk forward:ADDRESS")
        else:
            choose(bulk, BULK_ACTIONS[:3], "action for automated mail", "--bulk")
    if checked.get("split_regex"):
        try:
            re.compile(checked["split_regex"])
        except re.error as exc:
            raise BadInput(
                f"--split-regex is not a regular expression ({exc}): fix the pattern."
            ) from None
    for name, off in _COUNTS.items():
        if name in checked and checked[name] < 0:
            flag = "--" + name.replace("_", "-")
            raise BadInput(f"{flag} cannot be negative: {off}.")
    if checked.get("catch_address") is not None:
        catch = checked["catch_address"].strip(" ")
        checked["catch_address"] = check_address(catch, "--catch-address") if catch else None
    return checked


# The handler's counts and limits, and what 0 means for each.
_COUNTS = {
    "max_per_sender_hour": "use 0 to turn the limit off",
    "max_comments_per_issue_hour": "use 0 to turn the limit off",
    "max_cc_watchers": "use 0 for no watchers from Cc",
    "max_attachment_bytes": "give a size in bytes (0 keeps none)",
    "max_attachments_bytes": "give a size in bytes (0 keeps none)",
}


def check_name(name: str) -> str:
    return names.check_name("Mailbox", name)


async def get_mailbox(session: AsyncSession, name: str) -> Mailbox:
    row = (await session.scalars(select(Mailbox).where(Mailbox.name == name))).first()
    if row is None:
        raise NotFound(
            f"No mailbox named {name!r}: `mailgate mailbox list` shows the ones there are."
        )
    return row


async def add_mailbox(ctx: Context, name: str, opts: MailboxOptions) -> tuple[Mailbox, list[str]]:
    """Add a mailbox, checked whole before it is stored."""
    async with ctx.db.session() as session:
        if await _find(session, name) is not None:
            raise BadInput(
                f"A mailbox named {name!r} already exists: change it with `mailgate mailbox set "
                f"{name} …` or choose another name."
            )
        row, warnings = await stage_new_mailbox(ctx, session, name, opts)
        await session.commit()
        return row, warnings


async def set_mailbox(ctx: Context, name: str, opts: MailboxOptions) -> tuple[Mailbox, list[str]]:
    """Change a mailbox; its UID state stays, so no mail is taken twice."""
    async with ctx.db.session() as session:
        row = await get_mailbox(session, name)
        warnings = await stage_mailbox_change(ctx, session, row, opts)
        await session.commit()
        return row, warnings


async def _find(session: AsyncSession, name: str) -> Mailbox | None:
    return (await session.scalars(select(Mailbox).where(Mailbox.name == name))).first()


async def stage_new_mailbox(
    ctx: Context,
    session: AsyncSession,
    name: str,
    opts: MailboxOptions,
    *,
    audited: bool = True,
    projects: Collection[str] | None = None,
) -> tuple[Mailbox, list[str]]:
    """Add a mailbox to `session` (not committed), checked whole; `audited`: with its own event
    in the audit log (an import records one event for all); `projects` as `_resolve` takes
    them."""
    check_name(name)
    row = Mailbox(
        name=name,
        protocol="",
        host="",
        port=0,
        security="",
        username="",
        project="",
        handler="",
        after="",
        poll_seconds=0,
        backlog="",
        max_message_bytes=0,
        status=MailboxStatus.NEW,
        processed=0,
        quarantined=0,
        idle=True,
        folder="INBOX",
    )
    warnings = await _resolve(ctx, session, row, opts, projects)
    session.add(row)
    if audited:
        audit.record(session.sync_session, ctx.clock(), "mailbox.add", name, _described(row))
    return row, warnings


async def stage_mailbox_change(
    ctx: Context,
    session: AsyncSession,
    row: Mailbox,
    opts: MailboxOptions,
    *,
    audited: bool = True,
    projects: Collection[str] | None = None,
) -> list[str]:
    """Change a mailbox in `session` (not committed) as `mailbox set` does; `audited`: with its
    own event in the audit log; `projects` as `_resolve` takes them."""
    if opts.protocol is not None and opts.protocol != row.protocol:
        raise BadInput(
            f"Mailbox {row.name!r} reads over {row.protocol} and keeps that protocol's message "
            "state: add a new mailbox for the other protocol instead."
        )
    place = (row.host, row.port, row.username.lower(), row.folder)
    before = settings_of(mailbox_view(row), row)
    warnings = await _resolve(ctx, session, row, opts, projects)
    if (row.host, row.port, row.username.lower(), row.folder) != place:
        # Another mailbox or folder: its UIDs mean nothing here; start over (by --backlog).
        row.uidvalidity = None
        row.last_uid = None
    changed = changed_settings(before, settings_of(mailbox_view(row), row))
    if changed and audited:
        audit.record(session.sync_session, ctx.clock(), "mailbox.set", row.name, changed)
    return warnings


def _described(row: Mailbox) -> str:
    """The audit detail of a new mailbox: where it reads, how it signs in, where mail lands."""
    auth = f"credential {row.credential_id}" if row.credential_id is not None else "password"
    return f"{row.protocol} {row.username} at {row.host}:{row.port}, {auth}, project {row.project}"


async def list_mailboxes(ctx: Context) -> list[Mailbox]:
    async with ctx.db.session() as session:
        return list((await session.scalars(select(Mailbox).order_by(Mailbox.name))).all())


async def delete_mailbox(ctx: Context, name: str) -> None:
    """Delete a mailbox (the mail on its server is not touched)."""
    async with ctx.db.session() as session:
        await session.delete(await get_mailbox(session, name))
        audit.record(session.sync_session, ctx.clock(), "mailbox.delete", name)
        await session.commit()


def mailbox_view(row: Mailbox) -> dict[str, Any]:
    """A mailbox as shown anywhere — never the password."""
    return {
        "name": row.name,
        "protocol": row.protocol,
        **endpoint_view(row),
        "folder": row.folder,
        "project": row.project,
        "handler": row.handler,
        "after": row.after,
        "poll_seconds": row.poll_seconds,
        "idle": row.idle,
        "backlog": row.backlog,
        "max_message_bytes": row.max_message_bytes,
        "route_options": dict(row.route_options or {}),
        "status": row.status,
        "last_check_at": iso(row.last_check_at),
        "last_error": row.last_error,
        "processed": row.processed,
        "quarantined": row.quarantined,
        "created_at": iso(row.created_at),
        "warnings": password_warnings(row),
    }


def destination_of(mailbox: Mailbox) -> Destination:
    """Where the mailbox's messages go: its project, with its handler."""

    options = RouteOptions(handler=Handler(mailbox.handler), **(mailbox.route_options or {}))
    own = (mailbox.username, options.catch_address or "")
    return Destination(
        project=mailbox.project,
        options=options,
        own_addresses=tuple(address.lower() for address in own if address),
    )

"""The options of `mailgate mailbox add` and `set` (the keys of `mailbox import`'s entries are
their long names), and the MailboxOptions they make."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import parse_credential_id, read_password
from mailgate.inbound.mailbox_import import mailbox_options_of
from mailgate.inbound.mailboxes import MailboxOptions

MbProtocolOpt = Annotated[str | None, typer.Option("--protocol", help="imap or pop3.")]
MbHostOpt = Annotated[str | None, typer.Option("--host", help="The mail server's host name.")]
MbPortOpt = Annotated[
    int | None, typer.Option("--port", help="Default: 993/143 (IMAP), 995/110 (POP3).")
]
MbSecurityOpt = Annotated[
    str | None, typer.Option("--security", help="ssl (default), starttls, or none (loopback only).")
]
MbUserOpt = Annotated[
    str | None, typer.Option("--username", help="The server's login, usually the mailbox address.")
]
MbFolderOpt = Annotated[str | None, typer.Option("--folder", help="IMAP folder (default INBOX).")]
MbProjectOpt = Annotated[str | None, typer.Option("--project", help="Project key mail lands in.")]
MbHandlerOpt = Annotated[
    str | None, typer.Option("--handler", help="create-or-comment (default), create or comment.")
]
MbAfterOpt = Annotated[
    str | None, typer.Option("--after", help="seen (default), delete or move:FOLDER.")
]
MbPollOpt = Annotated[
    int | None, typer.Option("--poll", help="Poll interval in seconds (default 60).")
]
MbIdleOpt = Annotated[
    bool | None, typer.Option("--idle/--no-idle", help="Use IMAP IDLE when offered (default on).")
]
MbBacklogOpt = Annotated[
    str | None, typer.Option("--backlog", help="Mail already there: unseen (default), all or none.")
]
MbBulkOpt = Annotated[
    str | None,
    typer.Option(
        "--bulk",
        help="Automated mail (auto-replies, bounces, lists): ignore (default: left on the "
        "server with the post-action), accept (handled like a person's), delete, or "
        "forward:ADDRESS.",
    ),
]
MbNonParticipantsOpt = Annotated[
    str | None,
    typer.Option(
        "--non-participants",
        help="Mail about an issue from someone who is not its reporter or a watcher: "
        "new-issue (default), hold (for an agent: `quarantine retry ID --as-comment`) or comment.",
    ),
]
MbParticipantsOpt = Annotated[
    bool | None,
    typer.Option(
        "--comments-from-participants-only/--comments-from-anyone",
        help="Same as --non-participants new-issue / comment.",
    ),
]
MbCcOpt = Annotated[
    bool | None,
    typer.Option(
        "--cc-watchers/--no-cc-watchers", help="Cc'd addresses become watchers (default on)."
    ),
]
MbMaxCcOpt = Annotated[
    int | None,
    typer.Option(
        "--max-cc-watchers",
        help="At most this many Cc'd addresses of one message become watchers (default 10; "
        "0: none); the issue names the others.",
    ),
]
MbOtherKeysOpt = Annotated[
    bool | None,
    typer.Option(
        "--keys-of-other-projects/--own-project-keys-only",
        help="An issue key of another project in the subject comments there (default: only "
        "the mailbox's own project's keys count).",
    ),
]
MbCommentRateOpt = Annotated[
    int | None,
    typer.Option(
        "--max-comments-per-issue-hour",
        help="More comments from one sender on one issue within an hour are held for an agent "
        "(default 5; 0: off).",
    ),
]
MbCatchOpt = Annotated[
    str | None, typer.Option("--catch-address", help="Only mail addressed to this address.")
]
MbCustomersOpt = Annotated[
    bool | None,
    typer.Option(
        "--create-customers/--no-create-customers",
        help="Unknown senders become customers (default on); else the project's default reporter.",
    ),
]
MbWholeOpt = Annotated[
    bool | None,
    typer.Option(
        "--whole-body/--reply-only",
        help="Comments keep the quoted history (default: the reply only).",
    ),
]
MbSplitOpt = Annotated[
    str | None, typer.Option("--split-regex", help="Cut comments at the first match.")
]
MbDmarcOpt = Annotated[
    bool | None,
    typer.Option(
        "--quarantine-dmarc-fail/--accept-dmarc-fail",
        help="Quarantine mail whose DMARC check failed.",
    ),
]
MbFloodOpt = Annotated[
    int | None,
    typer.Option(
        "--max-per-sender-hour", help="Quarantine floods from one sender (default 30; 0: off)."
    ),
]
MbMaxOpt = Annotated[
    int | None,
    typer.Option("--max-message-bytes", help="Larger messages are quarantined (default 25 MB)."),
]


def mailbox_options(values: dict[str, Any]) -> MailboxOptions:
    """MailboxOptions from the arguments of `mailbox add` or `set`."""
    credential = values["credential"]
    return mailbox_options_of(
        {
            **values,
            "credential": parse_credential_id(credential) if credential is not None else None,
            "password": read_password(values["password_file"]),
        }
    )

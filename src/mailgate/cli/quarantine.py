"""`mailgate quarantine`: messages that could not be processed, and trying them again."""

from __future__ import annotations

from typing import Annotated

import typer

from mailgate.cli.common import JsonFlag, emit, parse_id, run, table
from mailgate.inbound.quarantine import list_quarantine, retry
from mailgate.store.vocabulary import ReceiptStatus

app = typer.Typer(help="Messages that could not be processed.", no_args_is_help=True)


@app.command("list")
def quarantine_list(as_json: JsonFlag = False) -> None:
    """List quarantined messages with the reason."""
    views = run(list_quarantine)
    columns = ["id", "mailbox", "project", "issue", "message_id", "reason"]
    emit(views, as_json, lambda: table(views, columns))


@app.command("retry")
def quarantine_retry(
    receipt_id: str,
    as_comment: Annotated[
        bool,
        typer.Option(
            "--as-comment",
            help="Accept a message held for an agent as a comment on its issue (notified like "
            "any comment).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a quarantined message through the pipeline again (after fixing the cause), or
    accept a held one as a comment."""
    receipt = parse_id(receipt_id, "Message ID", "`mailgate quarantine list` shows them")
    view = run(lambda ctx: retry(ctx, receipt, as_comment=as_comment))
    emit(
        view,
        as_json,
        lambda: (
            f"message {view['id']}: {view['status']}"
            + (f" ({view['reason']})" if view.get("reason") else "")
        ),
    )
    raise typer.Exit(0 if view["status"] != ReceiptStatus.QUARANTINED else 1)

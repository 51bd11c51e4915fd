"""`mailgate outbox`: notifications waiting to be sent, and sent."""

from __future__ import annotations

from typing import Annotated

import typer

from mailgate.cli.common import JsonFlag, emit, fail, run, table
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.outbound.outbox import FlushReport, flush, list_outbox, retry

app = typer.Typer(help="Notifications waiting to be sent, and sent.", no_args_is_help=True)


@app.command("list")
def outbox_list(as_json: JsonFlag = False) -> None:
    """Notifications: pending (with the last error), sent, dead."""
    views = run(list_outbox)
    columns = ["id", "kind", "issue", "to", "status", "attempts", "last_error"]
    emit(views, as_json, lambda: table(views, columns))


@app.command("retry")
def outbox_retry(
    message_id: Annotated[str | None, typer.Argument(help="A dead message's ID.")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead message.")] = False,
) -> None:
    """Send dead messages again, once what refused them is fixed."""
    if (message_id is None) == (not all_dead):
        fail(BadInput("Give a message ID or --all (`mailgate outbox list` shows the dead ones)."))
    number = None
    if message_id is not None:
        if not message_id.isdigit():
            fail(
                BadInput(f"{message_id!r} is not a message ID: give the number from `outbox list`.")
            )
        number = int(message_id)
    count = run(lambda ctx: retry(ctx, number))
    typer.echo(f"{count} message(s) queued again")


@app.command("flush")
def outbox_flush(as_json: JsonFlag = False) -> None:
    """Send every notification that is due, then exit."""

    async def work(ctx: Context) -> FlushReport:
        return await flush(ctx)

    report = run(work)
    counts = report.as_json()
    emit(counts, as_json, lambda: ", ".join(f"{n} {what}" for what, n in counts.items()))

"""`mailgate audit`: who did what and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mailgate.cli.common import JsonFlag, emit, run, table
from mailgate.errors import BadInput
from mailgate.tracker.audit_log import audit_log

app = typer.Typer(help="Who did what and when.", no_args_is_help=True)


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--since {value!r} is not a date or time: use ISO 8601, e.g. 2026-12-01 or "
            "2026-12-01T09:30:00Z."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("list")
def audit_list(
    since: Annotated[
        str | None, typer.Option("--since", help="ISO date or time (UTC unless given).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit log, newest first: sign-ins, changes to integrations, credentials, mailboxes,
    SMTP servers, projects and users (never a secret's value)."""

    moment = parse_since(since)
    rows = run(lambda ctx: audit_log(ctx, since=moment))
    emit(rows, as_json, lambda: table(rows, ["at", "actor", "action", "subject", "detail"]))

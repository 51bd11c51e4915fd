"""`mailgate migrate`."""

from __future__ import annotations

import typer

from mailgate.cli.common import fail
from mailgate.config import load_settings
from mailgate.errors import MailgateError
from mailgate.store.db import ensure_home
from mailgate.store.db import migrate as apply

app = typer.Typer()


@app.command()
def migrate() -> None:
    """Apply database migrations (every command also does this on first use)."""
    settings = load_settings()
    try:
        ensure_home(settings)  # private from the start (0700), as every command makes it
        applied = apply(settings.database_url)
    except MailgateError as error:
        fail(error)
    typer.echo("migrations applied" if applied else "database is up to date")

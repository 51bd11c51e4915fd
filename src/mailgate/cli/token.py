"""`mailgate token`: API tokens, a user's key to the REST API with that user's role."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, parse_id, run, table
from mailgate.tracker.tokens import create_token, list_tokens, revoke_token

app = typer.Typer(
    help="API tokens: a user's key to the REST API, with that user's role.", no_args_is_help=True
)

COLUMNS = ["id", "user", "name", "hint", "created_at", "last_used_at", "revoked_at"]


@app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="Email address of the token's user.")],
    name: Annotated[str, typer.Option("--name", help="What uses it (e.g. 'chat bot').")],
    as_json: JsonFlag = False,
) -> None:
    """Make a token for a user and print it, this once: only its hash is kept."""
    view, token = run(lambda ctx: create_token(ctx, user, name))
    emit(
        {**view, "token": token},
        as_json,
        lambda: f"{token}\nThis token is shown only now: copy it; mailgate keeps only its hash.",
    )


@app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens, newest first, revoked ones too (never a token: only its first characters)."""
    views: list[dict[str, Any]] = run(lambda ctx: list_tokens(ctx, user))
    emit(views, as_json, lambda: table(views, COLUMNS))


@app.command("revoke")
def token_revoke(token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a token at once (revoking a revoked one changes nothing)."""
    number = parse_id(token_id, "Token ID", "`mailgate token list` shows the IDs")
    view = run(lambda ctx: revoke_token(ctx, number))
    emit(view, as_json, lambda: f"revoked token {number} ({view['name']}) of {view['user']}")

"""`mailgate credential`: authorized accounts and their tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, key_values, parse_credential_id, run, table
from mailgate.context import Context
from mailgate.oauth.credentials import (
    credential_view,
    list_credentials,
    refresh_credential,
    revoke_credential,
    show_credential,
)

app = typer.Typer(help="Authorized accounts and their tokens.", no_args_is_help=True)


@app.command("list")
def credential_list(
    integration: Annotated[
        str | None, typer.Option("--integration", help="Only this integration's.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List credentials with their status."""

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [credential_view(c, n) for c, n in await list_credentials(ctx, integration)]

    views = run(work)
    emit(
        views,
        as_json,
        lambda: table(
            views, ["id", "integration", "account", "status", "expires_at", "last_error"]
        ),
    )


@app.command("show")
def credential_show(credential_id: str, as_json: JsonFlag = False) -> None:
    """Show a credential and its history."""
    cid = parse_credential_id(credential_id)

    view = run(lambda ctx: show_credential(ctx, cid))

    def text() -> str:
        head = {k: v for k, v in view.items() if k != "history"}
        lines = [key_values(head), "", "history:"]
        lines += [
            f"  {e['at']}  {e['event']}  {e['detail'] or ''}".rstrip() for e in view["history"]
        ]
        return "\n".join(lines)

    emit(view, as_json, text)


@app.command("refresh")
def credential_refresh(credential_id: str, as_json: JsonFlag = False) -> None:
    """Refresh a credential's access token now."""
    cid = parse_credential_id(credential_id)

    view = run(lambda ctx: refresh_credential(ctx, cid))
    emit(
        view,
        as_json,
        lambda: (
            f"refreshed credential {cid}: token valid until {view['expires_at']}"
            if view["ok"]
            else f"refresh failed: {view['error']}"
        ),
    )
    raise typer.Exit(0 if view["ok"] else 1)


@app.command("revoke")
def credential_revoke(credential_id: str) -> None:
    """Revoke a credential (at the provider when it offers revocation) and forget its tokens."""
    cid = parse_credential_id(credential_id)

    async def work(ctx: Context) -> bool:
        return await revoke_credential(ctx, cid)

    remote = run(work)
    typer.echo(
        f"revoked credential {cid}" + (" at the provider" if remote else " (tokens forgotten)")
    )

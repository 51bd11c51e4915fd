"""`mailgate user`: the people who sign in to the web UI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailgate.cli.common import JsonFlag, PasswordFileOpt, emit, read_password, run, table
from mailgate.context import Context
from mailgate.tracker.users import (
    Link,
    add_user,
    disable_user,
    list_users,
    password_link,
    set_user,
    user_view,
)

app = typer.Typer(help="People who sign in to the web UI: admins and agents.", no_args_is_help=True)

RoleOpt = Annotated[str | None, typer.Option("--role", help="admin or agent.")]


def _say_link(email: str, link: Link) -> None:
    typer.echo(
        f"{email} chooses a password at this one-time link, valid until "
        f"{link.expires_at:%Y-%m-%d %H:%M} UTC:\n{link.url}"
    )


@app.command("add")
def user_add(
    email: str,
    role: Annotated[str, typer.Option("--role", help="admin or agent.")] = "agent",
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="File holding the password (else: a one-time link)."),
    ] = None,
) -> None:
    """Add a user. Without --password-file, print a one-time link (valid 24 h) where they choose
    a password."""
    password = read_password(password_file)
    user, link = run(lambda ctx: add_user(ctx, email, role, password))
    typer.echo(f"added {user.role} {user.email}")
    if link is not None:
        _say_link(user.email, link)


@app.command("set")
def user_set(
    email: str,
    role: RoleOpt = None,
    password_file: PasswordFileOpt = None,
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Print a one-time link where they choose a new password."),
    ] = False,
    enable: Annotated[
        bool, typer.Option("--enable", help="Let a disabled user sign in again.")
    ] = False,
) -> None:
    """Change a user's role or password (their sessions end), or send a password-reset link."""
    password = read_password(password_file)

    async def work(ctx: Context) -> Link | None:
        if role is not None or password is not None or enable:
            await set_user(
                ctx, email, role=role, password=password, disabled=False if enable else None
            )
        return await password_link(ctx, email) if reset else None

    link = run(work)
    typer.echo(f"changed user {email.strip().lower()}")
    if link is not None:
        _say_link(email.strip().lower(), link)


@app.command("list")
def user_list(as_json: JsonFlag = False) -> None:
    """List users (never their password hashes)."""

    async def work(ctx: Context) -> list[dict[str, object]]:
        return [user_view(user) for user in await list_users(ctx)]

    views = run(work)
    emit(views, as_json, lambda: table(views, ["email", "role", "disabled", "last_sign_in_at"]))


@app.command("disable")
def user_disable(email: str) -> None:
    """Stop a user from signing in; their sessions end at once."""
    run(lambda ctx: disable_user(ctx, email))
    typer.echo(f"disabled user {email.strip().lower()}")

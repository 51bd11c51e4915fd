"""`mailgate smtp`: outgoing mail servers (SMTP), and their test by a message sent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import (
    CaFileOpt,
    CredentialOpt,
    JsonFlag,
    PasswordFileOpt,
    SaslOpt,
    emit,
    key_values,
    parse_credential_id,
    read_password,
    run,
    same_options,
    save_and_show,
    steps_text,
    table,
)
from mailgate.context import Context
from mailgate.mail.smtp_servers import (
    SmtpOptions,
    add_smtp,
    delete_smtp,
    get_smtp,
    list_smtp,
    set_smtp,
    smtp_view,
)
from mailgate.outbound.smtp_test import probe_smtp
from mailgate.steps import StepReport

app = typer.Typer(help="Outgoing mail servers (SMTP) with OAuth 2.0.", no_args_is_help=True)

SmHostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="The SMTP server (default with a Microsoft or Google credential: "
        "smtp.office365.com / smtp.gmail.com).",
    ),
]
SmPortOpt = Annotated[
    int | None, typer.Option("--port", help="Default: 587 (starttls), 465 (ssl).")
]
SmSecurityOpt = Annotated[
    str | None,
    typer.Option("--security", help="starttls (provider default), ssl, or none (loopback only)."),
]
SmUserOpt = Annotated[
    str | None,
    typer.Option("--username", help="The login (default: the credential's account)."),
]
SmFromOpt = Annotated[
    str | None, typer.Option("--from", help="The address mail is sent as (default: the login).")
]
SmFromNameOpt = Annotated[
    str | None, typer.Option("--from-name", help="The display name (default: the project's name).")
]


@app.command("add")
def smtp_add(
    name: str,
    host: SmHostOpt = None,
    port: SmPortOpt = None,
    security: SmSecurityOpt = None,
    username: SmUserOpt = None,
    credential: CredentialOpt = None,
    password_file: PasswordFileOpt = None,
    from_address: SmFromOpt = None,
    from_name: SmFromNameOpt = None,
    ca_file: CaFileOpt = None,
    sasl: SaslOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an outgoing mail server."""
    save_and_show(_save_smtp, dict(locals()), new=True)


@app.command("set")
@same_options(smtp_add)
def smtp_set(values: dict[str, Any]) -> None:
    """Change an outgoing mail server."""
    save_and_show(_save_smtp, values, new=False)


async def _save_smtp(
    ctx: Context, name: str, values: dict[str, Any], *, new: bool
) -> tuple[dict[str, Any], list[str]]:
    credential = values["credential"]
    options = SmtpOptions(
        host=values["host"],
        port=values["port"],
        security=values["security"],
        username=values["username"],
        credential_id=parse_credential_id(credential) if credential is not None else None,
        password=read_password(values["password_file"]),
        ca_file=values["ca_file"],
        sasl_mechanism=values["sasl"],
        from_address=values["from_address"],
        from_name=values["from_name"],
    )
    row, warnings = await (add_smtp if new else set_smtp)(ctx, name, options)
    return smtp_view(row), warnings


@app.command("list")
def smtp_list(as_json: JsonFlag = False) -> None:
    """List outgoing mail servers with their status."""

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [smtp_view(row) for row in await list_smtp(ctx)]

    views = run(work)
    columns = ["name", "host", "port", "username", "auth", "from", "status", "last_error"]
    emit(views, as_json, lambda: table(views, columns))


@app.command("show")
def smtp_show(name: str, as_json: JsonFlag = False) -> None:
    """Show an outgoing mail server."""

    async def work(ctx: Context) -> dict[str, Any]:
        async with ctx.db.session() as session:
            return smtp_view(await get_smtp(session, name))

    view = run(work)
    emit(view, as_json, lambda: key_values(view))


@app.command("test")
def smtp_test(
    name: str,
    to: Annotated[str, typer.Option("--to", help="Where the test message goes.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a test message: resolve, connect, TLS, greeting, token, authenticate, send."""

    async def work(ctx: Context) -> StepReport:
        return await probe_smtp(ctx, name, to)

    result = run(work)
    emit(result.as_json(), as_json, lambda: steps_text(result))
    raise typer.Exit(0 if result.ok else 1)


@app.command("delete")
def smtp_delete(name: str) -> None:
    """Delete an outgoing mail server (refused while a project sends through it by name)."""
    run(lambda ctx: delete_smtp(ctx, name))
    typer.echo(f"deleted SMTP server {name}")

"""`mailgate project`: projects of the built-in tracker."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, run, table
from mailgate.context import Context
from mailgate.tracker.service import add_project, list_projects, project_view, set_project

app = typer.Typer(help="Projects of the built-in tracker.", no_args_is_help=True)


@app.command("add")
def project_add(
    key: str,
    name: Annotated[str, typer.Option("--name", help="The project's name.")],
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp", help="SMTP server its notifications use (default: the only one there is)."
        ),
    ] = None,
) -> None:
    """Add a project (issues are KEY-1, KEY-2, …; KEY: 2 to 50 capital letters, digits, _)."""
    run(lambda ctx: add_project(ctx, key, name, smtp=smtp))
    typer.echo(f"added project {key}")


@app.command("set")
def project_set(
    key: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    smtp: Annotated[
        str | None,
        typer.Option("--smtp", help='SMTP server its notifications use ("" for the default).'),
    ] = None,
    notify: Annotated[bool | None, typer.Option("--notify/--no-notify")] = None,
    default_reporter: Annotated[
        str | None,
        typer.Option(
            "--default-reporter",
            help="The reporter of mail from unknown senders when a mailbox has "
            '--no-create-customers (an address; "" for none).',
        ),
    ] = None,
) -> None:
    """Change a project."""
    run(
        lambda ctx: set_project(
            ctx, key, name=name, smtp=smtp, notify=notify, default_reporter=default_reporter
        )
    )
    typer.echo(f"changed project {key}")


@app.command("list")
def project_list(as_json: JsonFlag = False) -> None:
    """List projects."""

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [project_view(project) for project in await list_projects(ctx)]

    views = run(work)
    emit(views, as_json, lambda: table(views, ["key", "name", "smtp", "notify"]))

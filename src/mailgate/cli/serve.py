"""`mailgate serve`: the web UI, the REST API and the mail workers in one process
(`mailgate worker`, in cli/worker.py, runs the workers alone without loading the web stack)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
import typer
import uvicorn

from mailgate import __version__
from mailgate.cli.common import fail, log_to_stderr
from mailgate.config import load_settings
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError
from mailgate.store.db import ensure_home
from mailgate.tracker.users import first_admin_link
from mailgate.web.app import create_app
from mailgate.web.tls import ensure_dev_certificate

app = typer.Typer()
log = structlog.get_logger(__name__)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port.")] = 8443,
    demo: Annotated[bool, typer.Option(help="Also serve the provider emulator (demo).")] = False,
) -> None:
    """Web UI, REST API and mail workers in one process, over HTTPS."""
    log_to_stderr("info")
    settings = load_settings()
    try:
        ensure_home(settings)
        # The database first: a broken one stops here, before anything is written beside it.
        ctx = Context.open(settings)
    except MailgateError as error:
        fail(error)
    try:
        settings.require_https_base_url()
    except BadInput as error:
        typer.echo(f"warning: {error}", err=True)  # the web UI works; OAuth sign-ins will not
    try:
        cert, key = ensure_dev_certificate(settings.home)
    except MailgateError as error:
        fail(error)
    except OSError as exc:
        fail(
            BadInput(
                f"The development certificate under {settings.home / 'tls'} cannot be made "
                f"({exc.strerror}): let mailgate write to its data folder."
            )
        )
    typer.echo(
        f"mailgate {__version__} serving https://{host}:{port} (base URL "
        f"{ctx.settings.base_url}); data in {ctx.settings.home}",
        err=True,
    )
    first_admin = None if demo else asyncio.run(first_admin_link(ctx))
    if first_admin is not None:
        typer.echo(
            "No one can sign in yet: open this one-time link to create the first admin (valid "
            f"until {first_admin.expires_at:%Y-%m-%d %H:%M} UTC; a restart makes a new one), or "
            f"run `mailgate user add EMAIL --role admin`:\n{first_admin.url}",
            err=True,
        )
    if demo:
        typer.echo(
            "demo: integration 'demo' signs in at the emulator mounted on /demo-idp; run "
            "`mailgate integration authorize demo --login-hint alice@contoso.example` and sign "
            "in with the password 'demo'",
            err=True,
        )
    uvicorn.run(
        create_app(ctx, demo=demo, tidy_heap=True),
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        log_config=None,  # uvicorn's records go through mailgate's handler (JSON off a terminal)
        lifespan="on",
    )

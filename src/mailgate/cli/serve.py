"""`mailgate serve` (the web UI, the REST API and the mail workers) and `mailgate worker` (the
mail workers alone)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
import uvicorn

from mailgate import __version__
from mailgate.cli.common import fail, log_to_stderr, run
from mailgate.config import load_settings
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.db import ensure_home
from mailgate.tracker.users import first_admin_link
from mailgate.web.app import create_app
from mailgate.web.tls import ensure_dev_certificate

app = typer.Typer()


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
        create_app(ctx, demo=demo),
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="on",
    )


@app.command()
def worker(
    name: Annotated[str | None, typer.Option(help="Worker name shown in leases.")] = None,
) -> None:
    """Mail workers only, no web server (run many, on many hosts)."""
    log_to_stderr("info")

    async def main(ctx: Context) -> None:
        supervisor = Supervisor(ctx)
        if name:
            # The name helps an admin read leases; the suffix keeps two workers given the
            # same name from sharing a lease.
            supervisor.keeper.owner = f"{name[:100]}:{supervisor.keeper.owner}"[:200]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        await supervisor.run()

    run(main)

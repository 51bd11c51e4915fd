"""`mailgate serve` (the web UI, the REST API and the mail workers) and `mailgate worker` (the
mail workers alone)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
import typer
import uvicorn

from mailgate import __version__, metrics
from mailgate.cli.common import fail, log_to_stderr, run
from mailgate.config import load_settings
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError
from mailgate.runtime.supervisor import Supervisor
from mailgate.store.db import ensure_home
from mailgate.tracker.users import first_admin_link
from mailgate.web.app import create_app, state_text
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
        create_app(ctx, demo=demo),
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        log_config=None,  # uvicorn's records go through mailgate's handler (JSON off a terminal)
        lifespan="on",
    )


@app.command()
def worker(
    name: Annotated[str | None, typer.Option(help="Worker name shown in leases.")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve GET /metrics (Prometheus) on 127.0.0.1:PORT; MAILGATE_METRICS_ADDRESS "
            "([HOST:]PORT) does the same. Off by default.",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Mail workers only, no web server (run many, on many hosts)."""
    metrics_at = metrics_address(metrics_port)

    async def main(ctx: Context) -> None:
        supervisor = Supervisor(ctx)
        if name:
            # The name helps an admin read leases; the suffix keeps two workers given the
            # same name from sharing a lease.
            supervisor.keeper.owner = f"{name[:100]}:{supervisor.keeper.owner}"[:200]
        loop = asyncio.get_running_loop()
        running = asyncio.ensure_future(supervisor.run())

        def stop() -> None:
            # The first signal: each mailbox loop finishes the message in hand, then every
            # lease is given back at once for another worker to take. A second one: now.
            if supervisor.stopping:
                running.cancel()
            supervisor.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        async with serving_metrics(ctx, metrics_at):
            with contextlib.suppress(asyncio.CancelledError):
                await running

    run(main, log_level="info")


def metrics_address(port: int | None) -> tuple[str, int] | None:
    """Where a worker serves its metrics: --metrics-port, else MAILGATE_METRICS_ADDRESS."""
    if port is not None:
        return "127.0.0.1", port
    address = os.environ.get("MAILGATE_METRICS_ADDRESS", "").strip()
    try:
        return metrics.parse_address(address) if address else None
    except BadInput as error:
        fail(error)


@asynccontextmanager
async def serving_metrics(ctx: Context, address: tuple[str, int] | None) -> AsyncIterator[None]:
    """GET /metrics on `address` while the worker runs (nothing when None)."""
    if address is None:
        yield
        return
    host, port = address
    try:
        server = await metrics.start_server(host, port, lambda: state_text(ctx))
    except OSError as exc:
        raise BadInput(
            f"The metrics address {host}:{port} cannot be listened on ({exc.strerror}): "
            "choose another port."
        ) from None
    log.info("metrics served", address=f"{host}:{port}")
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()

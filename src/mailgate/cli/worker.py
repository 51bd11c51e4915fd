"""`mailgate worker`: the mail workers alone, without the web stack (run many, on many hosts)."""

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

from mailgate import metrics
from mailgate.cli.common import fail, run
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.runtime.state_metrics import state_text
from mailgate.runtime.supervisor import Supervisor

app = typer.Typer()
log = structlog.get_logger(__name__)


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
        supervisor = Supervisor(ctx, tidy_heap=True)
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

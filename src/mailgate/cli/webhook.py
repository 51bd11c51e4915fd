"""`mailgate webhook`: URLs told of the desk's events, each delivery signed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, key_values, run, table
from mailgate.context import Context
from mailgate.store.vocabulary import WebhookEvent
from mailgate.tracker.webhooks import (
    add_webhook,
    delete_webhook,
    list_deliveries,
    list_webhooks,
    retry_deliveries,
    set_webhook,
)

app = typer.Typer(
    help="URLs told of the desk's events (Standard Webhooks), each delivery signed.",
    no_args_is_help=True,
)

EVENT_HELP = "An event to send (repeat the option for more): " + ", ".join(WebhookEvent) + "."


def _say_secret(secret: str) -> None:
    typer.echo(
        "The webhook's secret, shown this once (the receiver checks each delivery's signature "
        f"with it; `mailgate webhook set NAME --rotate-secret` makes a new one):\n{secret}"
    )


@app.command("add")
def webhook_add(
    name: str,
    url: Annotated[
        str,
        typer.Option(
            "--url", help="Where deliveries are POSTed: https:// (http:// only on loopback)."
        ),
    ],
    event: Annotated[list[str], typer.Option("--event", help=EVENT_HELP)],
    as_json: JsonFlag = False,
) -> None:
    """Add a webhook and print its secret (shown this once)."""
    view, secret = run(lambda ctx: add_webhook(ctx, name, url, event))
    if as_json:
        emit({**view, "secret": secret}, True, str)
        return
    typer.echo(f"added webhook {view['name']} → {view['url']} ({', '.join(view['events'])})")
    _say_secret(secret)


@app.command("list")
def webhook_list(as_json: JsonFlag = False) -> None:
    """Webhooks, their events and deliveries waiting or given up on (never their secrets)."""
    views = run(list_webhooks)
    columns = ["name", "url", "events", "active", "pending", "dead", "last_delivery_status"]
    emit(views, as_json, lambda: table(views, columns))


@app.command("set")
def webhook_set(
    name: str,
    url: Annotated[str | None, typer.Option("--url", help="A new URL.")] = None,
    event: Annotated[
        list[str] | None, typer.Option("--event", help="The events, replacing the old ones.")
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="Send deliveries, or hold them and queue none."),
    ] = None,
    rotate_secret: Annotated[
        bool,
        typer.Option(
            "--rotate-secret", help="A new secret, printed once; the old one stops at once."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a webhook: only what is given changes."""

    async def work(ctx: Context) -> tuple[dict[str, Any], str | None]:
        return await set_webhook(
            ctx, name, url=url, events=event or None, active=active, rotate=rotate_secret
        )

    view, secret = run(work)
    if as_json:
        emit({**view, **({"secret": secret} if secret else {})}, True, str)
        return
    typer.echo(key_values(view))
    if secret:
        _say_secret(secret)


@app.command("delete")
def webhook_delete(name: str) -> None:
    """Delete a webhook and its deliveries."""
    run(lambda ctx: delete_webhook(ctx, name))
    typer.echo(f"deleted webhook {name}")


@app.command("deliveries")
def webhook_deliveries(name: str, as_json: JsonFlag = False) -> None:
    """A webhook's latest deliveries, newest first."""
    views = run(lambda ctx: list_deliveries(ctx, name))
    columns = ["delivery_id", "event", "status", "attempts", "next_attempt_at", "last_error"]
    emit(views, as_json, lambda: table(views, columns))


@app.command("retry")
def webhook_retry(
    name: str,
    delivery_id: Annotated[
        str | None, typer.Argument(help="One delivery (pending or dead); else every dead one.")
    ] = None,
) -> None:
    """Send deliveries again at once, once the receiver is fixed."""
    count = run(lambda ctx: retry_deliveries(ctx, name, delivery_id))
    typer.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")

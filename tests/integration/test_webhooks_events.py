"""Each event a webhook can subscribe to is queued by the change that causes it, in its
transaction, with what a receiver needs to know (and never a token); the inbound pipeline looks
the webhooks up once per transaction; the CLI shows a webhook's secret once and never again."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from tests.support.cli import Cli
from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import Timeline, microsoft_credential
from tests.support.webhooks import HELP, Receiver, mail, take

from mailgate.context import Context
from mailgate.errors import NeedsReauthorization
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.oauth.tokens import TokenKeeper
from mailgate.outbound.webhooks import deliver_due
from mailgate.store.models import Webhook, WebhookDelivery
from mailgate.tracker.issues import comment_as_agent, set_status
from mailgate.tracker.service import add_project
from mailgate.tracker.webhooks import add_webhook

EVERY_EVENT = [
    "issue.created",
    "comment.added",
    "issue.status-changed",
    "message.quarantined",
    "credential.needs-attention",
]


async def queued(ctx: Context) -> list[dict[str, Any]]:
    """The payloads queued, oldest first."""
    rows = await ctx.db.read(
        lambda s: s.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.id)).all()
    )
    return [json.loads(row) for row in rows]


@pytest.fixture
async def project(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help desk")


async def test_the_desk_s_events_are_queued_with_what_happened(
    ctx: Context, receiver: Receiver, project: None
) -> None:
    _, secret = await add_webhook(ctx, "all", receiver.url, EVERY_EVENT)

    await take(ctx, mail("Printer on fire", 1))  # an issue, from a mail
    await comment_as_agent(ctx, "HELP-1", "We are on it.", None)
    await set_status(ctx, "HELP-1", "closed")
    await take(ctx, mail("Lost", 2), Destination(project="NOPE"))  # no such project

    created, commented, closed, quarantined = await queued(ctx)
    assert created["type"] == "issue.created"
    assert created["data"]["issue"]["key"] == "HELP-1"
    assert created["data"]["issue"]["reporter"] == "carol@example.net"
    assert commented["type"] == "comment.added"  # once, though two layers named it
    assert commented["data"]["comment"]["author"] == "admin@localhost"
    assert commented["data"]["comment"]["body"] == "We are on it."
    assert closed["type"] == "issue.status-changed"
    assert closed["data"]["issue"]["status"] == "closed"
    assert quarantined["type"] == "message.quarantined"
    assert quarantined["data"]["origin"] == "test"
    assert quarantined["data"]["sender"] == "carol@example.net"
    assert "NOPE does not exist" in quarantined["data"]["reason"]
    assert isinstance(quarantined["data"]["receipt_id"], int)
    # Every one goes out, signed.
    assert len((await deliver_due(ctx)).delivered) == 4
    assert [got.verified(secret)["type"] for got in receiver.received] == [
        "issue.created",
        "comment.added",
        "issue.status-changed",
        "message.quarantined",
    ]


async def test_a_credential_that_needs_the_admin_is_an_event_without_its_tokens(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock, receiver: Receiver
) -> None:
    await add_webhook(ctx, "ops", receiver.url, ["credential.needs-attention"])
    setup = await microsoft_credential(ctx, emulator)
    emulator.state.revoke_account("microsoft", setup.credential.account)
    Timeline(clock, emulator).advance(hours=1)
    keeper = TokenKeeper(ctx)
    for _ in range(2):  # asked again: still one event, the status did not change
        with pytest.raises(NeedsReauthorization):
            await keeper.access_token(setup.credential.id)

    [event] = await queued(ctx)
    assert event["type"] == "credential.needs-attention"
    data = event["data"]
    assert data["id"] == setup.credential.id
    assert data["integration"] == "m365"
    assert data["account"] == setup.credential.account
    assert data["status"] == "needs-reauthorization"
    assert "AADSTS50173" in data["last_error"]
    text = json.dumps(event)
    assert setup.grant.refresh_token not in text
    assert setup.grant.access_token is None or setup.grant.access_token not in text


async def test_the_pipeline_looks_the_webhooks_up_once_per_transaction(
    ctx: Context, receiver: Receiver, project: None
) -> None:
    await add_webhook(ctx, "desk", receiver.url, ["issue.created"])
    looked: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM webhooks" in statement:
            looked.append(statement)

    with ctx.db.sync_session() as session:
        engine = session.get_bind()
    assert isinstance(engine, sa.Engine)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        batch = [pipeline.Incoming(pipeline.MessageRef(), mail(f"Q{n}", n)) for n in range(5)]
        taken = await pipeline.take_many(ctx, None, batch, destination=HELP)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert [t.status for t in taken] == ["created"] * 5
    assert len(looked) == 1
    assert len(await queued(ctx)) == 5


async def test_the_cli_shows_the_secret_once(cli: Cli, ctx: Context, receiver: Receiver) -> None:
    added = cli(
        "webhook", "add", "desk", "--url", receiver.url,
        "--event", "issue.created", "--event", "comment.added",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    stored = await ctx.db.read(lambda s: s.scalar(select(Webhook.secret_enc)))
    assert stored is not None and secret not in stored  # encrypted at rest

    listed = cli("webhook", "list", "--json")
    assert listed.code == 0 and secret not in listed.stdout
    [view] = listed.json()
    assert view["events"] == ["issue.created", "comment.added"] and view["active"] is True
    assert "secret" not in view

    changed = cli("webhook", "set", "desk", "--inactive", "--event", "comment.added")
    assert changed.code == 0 and secret not in changed.stdout + changed.stderr
    rotated = cli("webhook", "set", "desk", "--rotate-secret", "--json")
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    for args in (("list",), ("list", "--json"), ("deliveries", "desk", "--json")):
        shown = cli("webhook", *args)
        assert shown.code == 0, shown.stderr
        assert secret not in shown.stdout and new_secret not in shown.stdout
    assert cli("webhook", "deliveries", "desk", "--json").json() == []

    refused = cli(
        "webhook", "add", "plain", "--url", "http://hooks.example.com/x", "--event", "issue.created"
    )
    assert refused.code == 2 and "http:// is accepted only for a loopback host" in refused.stderr
    unknown = cli("webhook", "add", "odd", "--url", receiver.url, "--event", "issue.deleted")
    assert unknown.code == 2 and "Unknown event 'issue.deleted'" in unknown.stderr
    missing = cli("webhook", "retry", "desk", "msg_nope")
    assert missing.code == 2 and "no delivery 'msg_nope'" in missing.stderr
    assert cli("webhook", "retry", "desk").stdout.strip() == "0 deliveries queued again"
    assert cli("webhook", "delete", "desk").code == 0
    assert cli("webhook", "list", "--json").json() == []
    audit = cli("audit", "list", "--json").json()
    actions = {event["action"] for event in audit}
    assert {"webhook.add", "webhook.set", "webhook.rotate-secret", "webhook.delete"} <= actions
    assert secret not in json.dumps(audit) and new_secret not in json.dumps(audit)

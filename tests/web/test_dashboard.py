"""The dashboard: what needs the admin first (each item with since when, the cause and its one
action as a link to its page, errors first), then the totals and each mailbox's state; the live
route answers the same part alone, to admins only, and leaves the page's one-time message."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.store.models import OutboxMessage
from tests.integration.test_notifications import take, with_smtp
from tests.integration.test_pipeline import mail
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import with_mailbox
from tests.support.web import WebClient

ITEM = re.compile(r'<li class="card" data-attention="([^"]+)" data-kind="([^"]+)">(.*?)</li>', re.S)


def total(page: str, name: str) -> int:
    found = re.search(rf'data-total="{name}">(\d+)<', page)
    assert found is not None, name
    return int(found.group(1))


def mailbox_row(page: str, name: str) -> str:
    return page.split(f'data-mailbox="{name}"')[1].split("</tr>")[0]


async def test_when_nothing_needs_the_admin_the_page_says_so_calmly(admin: WebClient) -> None:
    page = await admin.get("/")
    assert page.status_code == 200
    assert "Nothing needs you" in page.text and 'class="attention"' not in page.text
    assert "No mailboxes yet." in page.text and 'href="/mailboxes/new"' in page.text
    for name in ("open_issues", "outbox_pending", "outbox_dead", "quarantined"):
        assert total(page.text, name) == 0
    assert '<script src="/static/dashboard.js" defer></script>' in page.text
    assert 'data-live="/dashboard/live"' in page.text


async def failing_mailbox_and_dead_letters(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    """A mailbox whose sign-in the real Dovecot refuses, an issue, and its notification given
    up on."""
    await with_smtp(ctx)
    await take(ctx, mail())
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status="dead"))
    await with_mailbox(ctx, emulator, dovecot, credential_id=None, password="not-her-password")
    with pytest.raises(MailgateError):
        await poll_once(ctx, "support")


async def test_each_item_says_since_when_why_and_links_its_one_action(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await failing_mailbox_and_dead_letters(ctx, emulator, dovecot)
    page = await admin.get("/")
    items = ITEM.findall(page.text)
    assert items[0][:2] == ("mailbox:1", "mailbox-failing")  # errors first, then the oldest
    by_kind = {kind: body for _, kind, body in items}
    assert set(by_kind) == {"mailbox-failing", "dead-letters"}
    failing = by_kind["mailbox-failing"]
    assert '<span class="status bad">Error</span> <strong>mailbox support</strong>' in failing
    assert "since <time datetime=" in failing
    assert "The server refused the username or password" in failing  # the diagnosis
    assert '<a class="button" href="/mailboxes/support">Test the connection</a>' in failing
    dead = by_kind["dead-letters"]
    assert "1 message(s) could not be sent" in dead
    assert '<a class="button" href="/outbox">Retry the dead messages</a>' in dead
    assert "Nothing needs you" not in page.text
    assert (total(page.text, "open_issues"), total(page.text, "outbox_dead")) == (1, 1)
    assert "not-her-password" not in page.text


async def test_each_mailbox_shows_its_state_last_message_and_counts(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await failing_mailbox_and_dead_letters(ctx, emulator, dovecot)
    page = await admin.get("/")
    row = mailbox_row(page.text, "support")
    assert row.startswith(' data-state="failing">')
    assert '<a href="/mailboxes/support">support</a>' in row
    assert '<span class="status bad">sign-in refused</span>' in row
    assert "The server refused the username or password" in row
    assert "none yet" in row  # no message taken
    for count in ("taken", "created", "commented", "quarantined", "ignored"):
        assert f'data-count="{count}">0<' in row


async def test_the_live_route_answers_the_live_part_alone_and_keeps_the_message(
    ctx: Context, admin: WebClient
) -> None:
    await with_smtp(ctx)
    before = await admin.get("/dashboard/live")
    assert before.status_code == 200
    assert "<html" not in before.text and "<nav" not in before.text
    assert "data-live-part" in before.text and total(before.text, "open_issues") == 0
    await take(ctx, mail())
    after = await admin.get("/dashboard/live")
    assert total(after.text, "open_issues") == 1
    assert total(after.text, "outbox_pending") == 1
    # A change's one-time message survives the live refreshes, for the page it was meant for.
    changed = await admin.post("/projects/HELP", {"name": "Help desk", "notify": "on"})
    assert changed.status_code == 303
    await admin.get("/dashboard/live")
    assert "Project saved." in (await admin.get(changed.headers["location"])).text


async def test_the_live_route_is_the_admins_only(anonymous: WebClient, agent: WebClient) -> None:
    assert (await agent.get("/dashboard/live")).status_code == 403
    answer = await anonymous.get("/dashboard/live")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert "data-live-part" not in answer.text

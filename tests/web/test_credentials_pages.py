"""The credentials pages: every authorized account with its status and tokens' ages, who uses it,
its history, and Re-authorize, Refresh now, Revoke — never a token."""

from __future__ import annotations

import re
from datetime import timedelta

from markupsafe import escape

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import Credential
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.service import add_project
from tests.support.emulator import RunningEmulator
from tests.support.keeper import ACCOUNT, CLIENT_SECRET, Setup, microsoft_credential, reload
from tests.support.web import WebClient


def tokens_of(setup: Setup) -> list[str]:
    grant = setup.grant
    return [t for t in (grant.access_token, grant.refresh_token, CLIENT_SECRET) if t]


async def every_page(admin: WebClient, credential_id: int) -> str:
    paths = (
        "/credentials",
        f"/credentials/{credential_id}",
        f"/credentials/{credential_id}/revoke",
    )
    return "".join([(await admin.get(path)).text for path in paths])


async def test_no_credentials_yet_says_where_to_start(admin: WebClient) -> None:
    page = await admin.get("/credentials")
    assert page.status_code == 200
    assert "No credentials yet. Open an" in page.text and 'href="/integrations"' in page.text


async def test_the_list_says_how_obtained_status_and_ages(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session:  # its refresh token was issued 12 days ago
        row = await session.get(Credential, setup.credential.id)
        assert row is not None and row.refresh_token_issued_at is not None
        row.refresh_token_issued_at -= timedelta(days=12)
        await session.commit()
    page = await admin.get("/credentials")
    row = re.search(r"<tr>\s*<td><a href=\"/credentials/1\">.*?</tr>", page.text, re.S)
    assert row is not None
    cells = row.group(0)
    assert ACCOUNT in cells and 'href="/integrations/m365"' in cells
    assert "Browser sign-in" in cells and '<span class="status ok">Active</span>' in cells
    assert '12 days</span> <span class="help">(Microsoft ends one unused for 90 days)' in cells
    for token in tokens_of(setup):
        assert token not in page.text


async def test_a_credential_shows_who_uses_it_and_its_history(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    await add_project(ctx, "HELP", "Help desk")
    await add_mailbox(
        ctx,
        "support",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=993,
            username=ACCOUNT,
            credential_id=setup.credential.id,
            project="HELP",
        ),
    )
    page = await admin.get("/credentials/1")
    assert page.status_code == 200
    assert f"Connected as {ACCOUNT}" in page.text
    assert '<a href="/mailboxes/support">support</a> (incoming)' in page.text
    assert "<td>authorized</td>" in page.text
    integration = await admin.get("/integrations/m365")
    assert '<a href="/mailboxes/support">support</a> (incoming)' in integration.text
    missing = await admin.get("/credentials/99")
    assert missing.status_code == 404 and "No credential 99" in missing.text


async def test_refresh_now_and_its_failure_with_the_diagnosis(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    answer = await admin.post("/credentials/1/refresh")
    assert answer.status_code == 303 and answer.headers["location"] == "/credentials/1"
    assert "Refreshed: the access token is valid until" in (await admin.get("/credentials/1")).text
    emulator.state.revoke_account("microsoft", ACCOUNT)
    failed = await admin.post("/credentials/1/refresh")
    assert failed.status_code == 502
    assert '<p class="error" role="alert">The refresh failed:' in failed.text
    assert "Needs re-authorization" in failed.text
    assert "the grant was revoked (password changed or sessions revoked)" in failed.text
    listing = await admin.get("/credentials")
    assert '<span class="status bad">Needs re-authorization</span>' in listing.text
    stored = await reload(ctx, setup.credential.id)
    assert stored.last_error and escape(stored.last_error) in listing.text
    refreshes = [e["detail"] for e in await audit_log(ctx) if e["action"] == "credential.refresh"]
    assert len(refreshes) == 2 and refreshes[0].startswith("by hand under integration m365: failed")
    for token in tokens_of(setup):
        assert token not in await every_page(admin, 1)


async def test_revoke_asks_first_then_forgets_the_tokens(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    confirm = await admin.get("/credentials/1/revoke")
    assert confirm.status_code == 200 and "Microsoft offers no revocation endpoint" in confirm.text
    answer = await admin.post("/credentials/1/revoke")
    assert answer.status_code == 303
    page = await admin.get("/credentials/1")
    assert "Revoked (tokens forgotten)." in page.text
    assert '<span class="status idle">Revoked</span>' in page.text
    assert re.search(
        r'<button type="submit" class="secondary" disabled>Refresh now</button>', page.text
    )
    stored = await reload(ctx, setup.credential.id)
    assert stored.access_token_enc is None and stored.refresh_token_enc is None
    [event] = [e for e in await audit_log(ctx) if e["action"] == "credential.revoke"]
    assert event["subject"] == ACCOUNT and event["detail"].endswith("tokens forgotten")


async def test_reauthorize_starts_a_sign_in_for_the_same_account(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    await microsoft_credential(ctx, emulator)
    answer = await admin.post("/credentials/1/reauthorize")
    assert answer.status_code == 303
    start = await admin.get(answer.headers["location"])
    assert start.status_code == 200
    assert f"the mailbox <strong>{ACCOUNT}</strong>" in start.text


async def test_a_refresh_by_the_keeper_is_not_recorded_as_by_hand(
    ctx: Context, admin: WebClient, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    await TokenKeeper(ctx).refresh(setup.credential.id)
    assert not [e for e in await audit_log(ctx) if e["action"] == "credential.refresh"]

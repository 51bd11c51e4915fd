"""`mailbox test` against a real Dovecot whose oauth2 passdb asks the emulator about every token:
each step, and each diagnosis Dovecot and the emulator can really produce."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential, reload

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime.probe import ProbeResult, probe
from mailgate.steps import Step
from mailgate.tracker.service import add_project

ALICE = "alice@example.test"


@pytest.fixture(autouse=True)
async def help_project(ctx: Context) -> None:
    """The project the mailboxes here feed (a mailbox's project must exist)."""
    await add_project(ctx, "HELP", "Help desk")


def message(subject: str = "Printer on fire") -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '.')}@example.net>"
    mail.set_content("Help!")
    return bytes(mail)


async def setup(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    *,
    protocol: str = "imap",
    security: str = "ssl",
    username: str = ALICE,
    account: str = ALICE,
    **options: object,
) -> int:
    cred = await microsoft_credential(ctx, emulator, account=account)
    port = {
        ("imap", "ssl"): dovecot.imaps_port,
        ("imap", "starttls"): dovecot.imap_port,
        ("pop3", "ssl"): dovecot.pop3s_port,
        ("pop3", "starttls"): dovecot.pop3_port,
    }
    defaults: dict[str, object] = {
        "protocol": protocol,
        "host": "127.0.0.1",
        "port": port[(protocol, security)],
        "security": security,
        "username": username,
        "credential_id": cred.credential.id,
        "ca_file": str(dovecot.ca_file),
        "project": "HELP",
    }
    defaults.update(options)
    await add_mailbox(ctx, "support", MailboxOptions(**defaults))  # type: ignore[arg-type]
    return cred.credential.id


def steps(result: ProbeResult) -> list[tuple[str, bool]]:
    return [(s.step, s.ok) for s in result.steps]


ALL_OK_IMAP = [
    (s, True)
    for s in ("resolve", "connect", "tls", "greeting", "token", "authenticate", "select", "count")
]
ALL_OK_POP = [
    (s, True)
    for s in ("resolve", "connect", "tls", "greeting", "token", "authenticate", "stat", "count")
]


@pytest.mark.parametrize(
    ("protocol", "security", "sasl", "expected"),
    [
        ("imap", "ssl", "XOAUTH2", ALL_OK_IMAP),
        ("imap", "starttls", "OAUTHBEARER", ALL_OK_IMAP),
        ("pop3", "ssl", "OAUTHBEARER", ALL_OK_POP),
        ("pop3", "starttls", "XOAUTH2", ALL_OK_POP),
    ],
)
async def test_every_step_passes(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    protocol: str,
    security: str,
    sasl: str,
    expected: list[tuple[str, bool]],
) -> None:
    dovecot.deliver(ALICE, message())
    await setup(ctx, emulator, dovecot, protocol=protocol, security=security, sasl_mechanism=sasl)
    result = await probe(ctx, "support")
    assert steps(result) == expected, result.as_json()
    assert result.diagnosis is None
    auth = next(s for s in result.steps if s.step == "authenticate")
    assert auth.detail.startswith(f"{sasl} as {ALICE}")
    assert result.steps[-1].detail.startswith("1 message")


@pytest.mark.parametrize(("protocol", "expected"), [("imap", ALL_OK_IMAP), ("pop3", ALL_OK_POP)])
async def test_each_step_is_heard_while_the_test_runs(
    ctx: Context,
    emulator: RunningEmulator,
    dovecot: Dovecot,
    protocol: str,
    expected: list[tuple[str, bool]],
) -> None:
    """What a page shows live: the listener hears "connect" before the mailbox is counted (a
    message delivered when it is heard is in the count), and every step exactly once."""
    await setup(ctx, emulator, dovecot, protocol=protocol)
    heard: list[tuple[str, bool]] = []

    def on_step(step: Step) -> None:
        heard.append((step.step, step.ok))
        if step.step == "connect":
            dovecot.deliver(ALICE, message())

    result = await probe(ctx, "support", on_step=on_step)
    assert heard == expected == steps(result), result.as_json()
    assert result.steps[-1].detail.startswith("1 message")


async def test_password_authentication(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, tmp_path: object
) -> None:
    await add_mailbox(
        ctx,
        "support",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=dovecot.imaps_port,
            username=ALICE,
            password="alice-password",
            ca_file=str(dovecot.ca_file),
            project="HELP",
        ),
    )
    result = await probe(ctx, "support")
    assert steps(result) == ALL_OK_IMAP, result.as_json()
    wrong = await add_mailbox(
        ctx,
        "wrong",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=dovecot.imaps_port,
            username=ALICE,
            password="not-it",
            ca_file=str(dovecot.ca_file),
            project="HELP",
        ),
    )
    assert wrong
    refused = await probe(ctx, "wrong")
    assert steps(refused)[-1] == ("authenticate", False)
    assert "username or password" in (refused.diagnosis or "")


async def test_token_of_another_user_is_refused_after_one_refresh(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await setup(ctx, emulator, dovecot, username="bob@example.test")
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("authenticate", False)
    assert "AUTHENTICATIONFAILED" in result.steps[-1].detail
    assert "--username alice@example.test" in (result.diagnosis or "")
    assert "status invalid_token" in (result.diagnosis or "")  # OAUTHBEARER's challenge
    # Refreshed once, retried once, then stopped: never a loop against the server.
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1


async def test_expired_token_is_refreshed_and_retried(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await setup(ctx, emulator, dovecot)
    emulator.state.advance(2 * 3600)  # the server's view: the token has expired
    result = await probe(ctx, "support")
    assert steps(result) == ALL_OK_IMAP, result.as_json()
    assert "after one refresh" in result.steps[5].detail


async def test_revoked_grant_stops_with_needs_reauthorization(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    credential_id = await setup(ctx, emulator, dovecot)
    emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("token", False)
    assert "AADSTS50173" in (result.diagnosis or "")
    assert (await reload(ctx, credential_id)).status == "needs-reauthorization"


async def test_untrusted_certificate(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await setup(ctx, emulator, dovecot)
    async with ctx.db.session() as session:
        from mailgate.inbound.mailboxes import get_mailbox

        (await get_mailbox(session, "support")).ca_file = None
        await session.commit()
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("tls", False)
    assert "--ca-file" in (result.diagnosis or "")


async def test_connection_refused(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    from tests.support.server import free_port

    await setup(ctx, emulator, dovecot, port=free_port())
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("connect", False)
    assert "refused the connection" in (result.diagnosis or "")


async def test_missing_folder(ctx: Context, emulator: RunningEmulator, dovecot: Dovecot) -> None:
    await setup(ctx, emulator, dovecot, folder="Tickets")
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("select", False)
    assert "--folder" in (result.diagnosis or "")


async def test_cached_token_is_not_refreshed_when_valid(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    credential_id = await setup(ctx, emulator, dovecot)
    keeper = TokenKeeper(ctx)
    assert (await probe(ctx, "support", keeper)).ok
    assert (await probe(ctx, "support", keeper)).ok
    assert emulator.state.count_requests(endpoint="token") == 0
    assert (await reload(ctx, credential_id)).status == "active"


async def test_server_that_cannot_check_tokens_is_a_temporary_failure(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await setup(ctx, emulator, dovecot)
    emulator.state.reset()  # the introspection credentials Dovecot uses are gone: it cannot check
    emulator.state.register_client("microsoft", "x", "y")
    result = await probe(ctx, "support")
    assert steps(result)[-1] == ("authenticate", False)
    assert "UNAVAILABLE" in result.steps[-1].detail
    assert "temporary" in (result.diagnosis or "")

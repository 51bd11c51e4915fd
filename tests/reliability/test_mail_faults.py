"""Faults on the mail path, with the real servers: the IMAP server stopped (or crashed) in the
middle of a run, and the token endpoint answering 503 and then hanging for longer than the
HTTP timeout. Each time: while the fault lasts, the mailbox's status (the dashboard's state,
`mailbox list --json` and the /metrics gauges) says what is wrong, and says it is not the
admin's to fix; when the fault ends, the mailbox resumes on its own; every message delivered
is taken exactly once.

Each mailbox loop runs as the supervisor runs it (`runtime/imap_mailbox.run_mailbox` with the
token keeper) but with a short reconnect backoff, so that a recovery is seen in a second
rather than in the minutes a real backoff may reach; the real clock otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx2
import pytest
from sqlalchemy import select
from tests.support.cli import Cli
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.lmtp import LmtpDelivery
from tests.support.mail import ALICE, message, with_mailbox

from mailgate.backoff import Backoff
from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound.mailboxes import list_mailboxes, mailbox_view
from mailgate.oauth.tokens import RefreshPolicy, TokenKeeper
from mailgate.runtime.imap_mailbox import receipts_of, run_mailbox
from mailgate.runtime.overview import Activity, mailbox_states
from mailgate.store.models import Credential, CredentialEvent, Issue, Mailbox
from mailgate.store.vocabulary import CredentialEventKind, CredentialStatus, MailboxStatus
from mailgate.web.app import create_app

WAIT = 30.0  # seconds for a state the loop reaches within about one on an idle machine


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Context]:
    """A context with the real clock and sleep, as in a running process."""
    context = Context.open(settings)
    yield context
    await context.close()


@asynccontextmanager
async def mailbox_running(
    ctx: Context, name: str, keeper: TokenKeeper | None = None
) -> AsyncIterator[None]:
    """The mailbox's loop, reconnecting after 50 to 500 ms (a real one backs off to minutes)."""
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_mailbox(
            ctx,
            name,
            stop,
            keeper=keeper or TokenKeeper(ctx),
            backoff=Backoff(base=0.05, cap=0.5),
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)


async def until(what: str, check: Callable[[], object], seconds: float = WAIT) -> None:
    """Wait until the (async) `check` returns something true."""
    for _ in range(int(seconds * 10)):
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds:g} s: {what}")


async def mailbox_row(ctx: Context, name: str = "support") -> Mailbox:
    async with ctx.db.session() as session:
        row = (await session.scalars(select(Mailbox).where(Mailbox.name == name))).one()
        return row


Scrape = Callable[[], Awaitable[dict[str, float]]]


@pytest.fixture
async def scrape(live: Context) -> AsyncIterator[Scrape]:
    """GET /metrics as a scraper reads it: each sample's name and labels → its value."""
    transport = httpx2.ASGITransport(app=create_app(live, run_workers=False))
    async with httpx2.AsyncClient(transport=transport, base_url=live.settings.base_url) as client:

        async def samples() -> dict[str, float]:
            answer = await client.get("/metrics")
            assert answer.status_code == 200, answer.text
            found = {}
            for line in answer.text.splitlines():
                if line and not line.startswith("#"):
                    name, value = line.rsplit(" ", 1)
                    found[name] = float(value)
            return found

        yield samples


async def listed(cli: Cli) -> dict[str, object]:
    """`mailgate mailbox list --json`'s mailbox "support", from another process."""
    result = await asyncio.to_thread(cli, "mailbox", "list", "--json")
    assert result.code == 0, result.stderr
    [view] = [m for m in json.loads(result.stdout) if m["name"] == "support"]
    return dict(view)


async def taken_once(ctx: Context, mailbox_id: int, subjects: list[str]) -> None:
    """Each message one receipt and one issue, its post-action done; nothing else."""
    receipts = await receipts_of(ctx, mailbox_id)
    ids = sorted(r.message_id or "" for r in receipts)
    wanted = sorted(f"{s.replace(' ', '-')}@example.net" for s in subjects)
    assert [i.strip("<>") for i in ids] == wanted
    assert all(r.post_action_done_at is not None for r in receipts)
    async with ctx.db.session() as session:
        issues = (await session.scalars(select(Issue.summary))).all()
    assert sorted(issues) == sorted(subjects)


@pytest.mark.stores("postgresql")  # the deployment with several workers
@pytest.mark.parametrize("how", ["stopped", "crashed"])
async def test_the_imap_server_stopped_mid_run_then_back_loses_nothing(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, cli: Cli, scrape: Scrape, how: str
) -> None:
    # Forty messages from one customer within a minute: no flood limit here.
    mailbox = await with_mailbox(
        live, emulator, dovecot, poll_seconds=3600, route={"max_per_sender_hour": 0}
    )
    before = [f"Before {n}" for n in range(3)]
    burst = [f"Burst {n}" for n in range(40)]
    after = [f"After {n}" for n in range(3)]
    with LmtpDelivery(dovecot) as lmtp:
        for subject in before:
            lmtp.deliver(ALICE, message(subject))  # before the loop starts
        async with mailbox_running(live, "support"):
            await until("the first messages taken", lambda: has_receipts(live, mailbox.id, 3))
            # A burst, and the server goes away while the loop is taking it.
            await asyncio.to_thread(lambda: [lmtp.deliver(ALICE, message(s)) for s in burst])
            await until("some of the burst taken", lambda: has_receipts(live, mailbox.id, 4))
            lmtp.close()
            await asyncio.to_thread(dovecot.kill if how == "crashed" else dovecot.stop)

            await until("the status says failing", lambda: is_status(live, MailboxStatus.FAILING))
            [state] = await mailbox_states(live)
            assert state.activity == Activity.FAILING and state.words == "failing"
            assert state.last_error and "reconnecting" in state.last_error
            assert "authoriz" not in state.last_error.lower()  # nothing for the admin to do
            samples = await scrape()
            assert samples['mailgate_mailboxes{status="failing"}'] == 1
            assert samples.get('mailgate_mailboxes{status="idle"}', 0) == 0
            view = await listed(cli)
            assert view["status"] == "failing" and "reconnecting" in str(view["last_error"])

            await asyncio.to_thread(dovecot.start)
            await asyncio.to_thread(lambda: [lmtp.deliver(ALICE, message(s)) for s in after])
            everything = before + burst + after
            await until(
                "every message taken after the restart",
                lambda: has_receipts(live, mailbox.id, len(everything), done=True),
            )
            await until("the status says idle", lambda: is_status(live, MailboxStatus.IDLE))
    await taken_once(live, mailbox.id, everything)
    assert dovecot.mailbox_status(ALICE) | {"uidnext": 0, "uidvalidity": 0} == {
        "messages": len(everything),
        "unseen": 0,  # every one marked seen, once taken
        "uidnext": 0,
        "uidvalidity": 0,
    }
    samples = await scrape()
    assert samples['mailgate_mailboxes{status="idle"}'] == 1
    assert samples.get('mailgate_mailboxes{status="failing"}', 0) == 0


async def has_receipts(ctx: Context, mailbox_id: int, count: int, *, done: bool = False) -> bool:
    receipts = await receipts_of(ctx, mailbox_id)
    finished = [r for r in receipts if r.post_action_done_at is not None or not done]
    return len(finished) >= count


async def is_status(ctx: Context, status: str) -> bool:
    return (await mailbox_row(ctx)).status == status


async def credential_row(ctx: Context, credential_id: int) -> Credential:
    async with ctx.db.session() as session:
        row = await session.get(Credential, credential_id, populate_existing=True)
        assert row is not None
        return row


async def test_a_token_endpoint_down_then_hanging_is_waited_out_not_blamed_on_the_grant(
    live: Context, emulator: RunningEmulator, dovecot: Dovecot, cli: Cli, scrape: Scrape
) -> None:
    mailbox = await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    assert mailbox.credential_id is not None
    credential_id = mailbox.credential_id
    # The keeper's HTTP timeout, shortened: the endpoint will hang for 3 s. Its backoff after a
    # failed refresh too (seconds, not the minutes of a real one), like the loop's reconnects:
    # a refused token is refreshed again only once that backoff is over.
    short = RefreshPolicy(backoff_base=timedelta(seconds=1), backoff_max=timedelta(seconds=2))
    keeper = TokenKeeper(live, request_timeout=0.5, policy=short)
    subjects = ["Before the outage", "During the outage", "During the hang", "After it all"]
    with LmtpDelivery(dovecot) as lmtp:
        lmtp.deliver(ALICE, message(subjects[0]))
        async with mailbox_running(live, "support", keeper):
            await until("the first message taken", lambda: has_receipts(live, mailbox.id, 1))
            await until("IDLE", lambda: is_status(live, MailboxStatus.IDLE))

            # The access token expires at the provider, whose token endpoint is down (503, as
            # Microsoft's edge answers: temporarily_unavailable). The server ends the session;
            # signing in again needs a new token.
            emulator.state.inject_fault(status=503, count=None)
            emulator.state.advance(2 * 3600)
            await asyncio.to_thread(dovecot.kick, ALICE)
            await until(
                "refreshes refused with 503",
                lambda: refused_and_failing(live, emulator, credential_id, "unavailable"),
            )
            await says_the_provider_is_unavailable(live, scrape, credential_id, "unavailable")
            view = await listed(cli)  # another process reads the same
            assert view["status"] == "failing" and "unavailable" in str(view["last_error"])
            lmtp.deliver(ALICE, message(subjects[1]))

            # Then it hangs, far longer than the client waits.
            emulator.state.clear_faults()
            emulator.state.inject_fault(status=None, delay=3.0, count=None)
            await until(
                "refreshes timing out",
                lambda: refused_and_failing(live, emulator, credential_id, "timed out"),
            )
            await says_the_provider_is_unavailable(live, scrape, credential_id, "timed out")
            lmtp.deliver(ALICE, message(subjects[2]))

            # The endpoint recovers: nobody does anything.
            emulator.state.clear_faults()
            await until("IDLE again", lambda: is_status(live, MailboxStatus.IDLE))
            lmtp.deliver(ALICE, message(subjects[3]))
            await until(
                "every message taken",
                lambda: has_receipts(live, mailbox.id, len(subjects), done=True),
            )
    await taken_once(live, mailbox.id, subjects)
    credential = await credential_row(live, credential_id)
    assert (credential.status, credential.failure_count) == (CredentialStatus.ACTIVE, 0)
    async with live.db.session() as session:
        kinds = set((await session.scalars(select(CredentialEvent.kind))).all())
    assert CredentialEventKind.NEEDS_REAUTHORIZATION not in kinds
    samples = await scrape()
    assert samples['mailgate_mailboxes{status="idle"}'] == 1
    assert samples['mailgate_credentials{status="active"}'] == 1


async def refused_and_failing(
    ctx: Context, emulator: RunningEmulator, credential_id: int, words: str
) -> bool:
    """The refresh failed with `words` in its error, and the mailbox says it."""
    credential = await credential_row(ctx, credential_id)
    row = await mailbox_row(ctx)
    return (
        emulator.state.count_requests(endpoint="token", grant_type="refresh_token") > 0
        and words in (credential.last_error or "")
        and row.status == MailboxStatus.FAILING
        and words in (row.last_error or "")
    )


async def says_the_provider_is_unavailable(
    ctx: Context, scrape: Scrape, credential_id: int, words: str
) -> None:
    """The dashboard's state, what `mailbox list` shows and /metrics: failing because of the
    provider, the grant still good (nothing to re-authorize)."""
    credential = await credential_row(ctx, credential_id)
    assert credential.status == CredentialStatus.REFRESH_FAILING
    [state] = await mailbox_states(ctx)
    assert state.activity == Activity.FAILING
    assert state.last_error is not None and words in state.last_error
    assert "authoriz" not in state.last_error.lower()
    [view] = [mailbox_view(row) for row in await list_mailboxes(ctx)]
    assert view["status"] == "failing" and words in str(view["last_error"])
    samples = await scrape()
    assert samples['mailgate_mailboxes{status="failing"}'] == 1
    assert samples['mailgate_credentials{status="refresh-failing"}'] == 1
    assert samples.get('mailgate_credentials{status="needs-reauthorization"}', 0) == 0
    assert samples.get('mailgate_mailboxes{status="needs-reauthorization"}', 0) == 0

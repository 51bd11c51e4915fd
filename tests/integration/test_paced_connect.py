"""Many mailboxes opening at once (a worker's start): their token requests go through the pacer
too, one refresh serves every mailbox of a credential, and many credentials are refreshed a few
at a time. The mail server is a stand-in: what is measured is what reaches the token endpoint."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Self

from tests.support.clock import FakeClock
from tests.support.emulator import RunningEmulator
from tests.support.keeper import Timeline, microsoft_credential

from mailgate.context import Context
from mailgate.mail.connection import MailClient
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime.connect import open_signed_in
from mailgate.runtime.pacing import Pacer
from mailgate.store.models import Credential, Mailbox


class StandIn(MailClient):
    """A mail server that takes any token and remembers which it was given."""

    tokens: ClassVar[list[str]] = []

    @classmethod
    async def open_connected(cls, host: str, port: int, **_options: object) -> Self:
        return cls(None)  # type: ignore[arg-type]

    async def authenticate(self, mechanism: str, user: str, token: str) -> str:
        self.tokens.append(token)
        return "OK"

    @property
    def sasl_mechanisms(self) -> set[str]:
        return {"XOAUTH2"}

    async def close(self) -> None:
        pass

    async def read_greeting(self) -> None: ...
    async def offers_starttls(self) -> bool: ...  # type: ignore[empty-body]
    async def command(self, line: str) -> object: ...
    def forget_capabilities(self) -> None: ...
    async def refresh_capabilities(self) -> None: ...
    async def login(self, user: str, password: str) -> str: ...  # type: ignore[empty-body]
    async def logout(self) -> None: ...


def mailbox_on(credential: Credential, number: int) -> Mailbox:
    return Mailbox(
        name=f"box{number}",
        host="imap.example.test",
        port=993,
        security="ssl",
        username=credential.account,
        credential_id=credential.id,
        sasl_mechanism=None,
        ca_file=None,
    )


async def open_all(ctx: Context, keeper: TokenKeeper, pacer: Pacer, boxes: list[Mailbox]) -> None:
    clients = await asyncio.gather(
        *(open_signed_in(ctx, keeper, box, StandIn, pacer=pacer) for box in boxes)
    )
    assert len(clients) == len(boxes)


async def test_a_thousand_mailboxes_of_one_credential_refresh_it_once(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    Timeline(clock, emulator).advance(hours=2)  # the stored access token has expired
    StandIn.tokens = []
    pacer = Pacer(rate=100_000, in_flight=20)
    boxes = [mailbox_on(setup.credential, n) for n in range(1000)]
    await open_all(ctx, TokenKeeper(ctx), pacer, boxes)
    assert emulator.state.count_requests(grant_type="refresh_token") == 1
    assert len(StandIn.tokens) == 1000 and len(set(StandIn.tokens)) == 1
    assert StandIn.tokens[0] != setup.grant.access_token  # the refreshed one


async def test_many_credentials_are_refreshed_a_few_at_a_time(
    ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    credentials = [
        (await microsoft_credential(ctx, emulator, name=f"m{n}", account=f"u{n}@contoso.example"))
        for n in range(12)
    ]
    Timeline(clock, emulator).advance(hours=2)
    refreshing = 0
    most = 0

    async def slow_commit(_credential: Credential) -> None:
        # Each refresh holds on before its commit, so refreshes let in together overlap here.
        nonlocal refreshing, most
        refreshing += 1
        most = max(most, refreshing)
        await asyncio.sleep(0.05)
        refreshing -= 1

    keeper = TokenKeeper(ctx, before_commit=slow_commit)
    boxes = [mailbox_on(setup.credential, n) for n, setup in enumerate(credentials)]
    await open_all(ctx, keeper, Pacer(rate=100_000, in_flight=3), boxes)
    assert emulator.state.count_requests(grant_type="refresh_token") == 12
    assert 1 < most <= 3

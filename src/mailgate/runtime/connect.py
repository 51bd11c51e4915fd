"""Opening a mailbox: connect, TLS, and sign in — with the mailbox's OAuth 2.0 credential (a
refused token refreshed once and tried once more: `oauth/access.py`) or its password.

The mailbox loops open their connection here; `mailbox test` takes the same steps one at a time
and signs in with the same `sign_in`. Every opening of the process waits its turn at one pacer
(`runtime/pacing.py`): a worker that starts with a thousand mailboxes connects them at a steady
pace, and asks for their tokens at that pace too. The connections share one TLS context per CA
file (`shared_tls_context`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from mailgate.context import Context
from mailgate.mail import sasl
from mailgate.mail.connection import MailClient
from mailgate.mail.endpoints import password_of
from mailgate.mail.tls import shared_tls_context
from mailgate.oauth.access import authenticate_with_refresh
from mailgate.oauth.tokens import AccessToken, TokenKeeper
from mailgate.runtime.pacing import Pacing, pacer_for_this_loop
from mailgate.store.models import Mailbox

Client = TypeVar("Client", bound=MailClient)


def mechanism_for(mailbox: Mailbox, client: MailClient) -> str:
    """The SASL mechanism for a token: the mailbox's choice if the server offers it, else
    OAUTHBEARER, else XOAUTH2 (`sasl.NoOAuthMechanism` when it offers neither)."""
    return sasl.choose_mechanism(client.sasl_mechanisms, mailbox.sasl_mechanism)


async def sign_in(
    ctx: Context, mailbox: Mailbox, client: MailClient, token: AccessToken | None
) -> str:
    """Authenticate with the token, or with the password when there is none; what the server
    said."""
    if token is None:
        return await client.login(mailbox.username, password_of(ctx, mailbox))
    return await client.authenticate(mechanism_for(mailbox, client), mailbox.username, token.value)


async def open_signed_in(
    ctx: Context,
    keeper: TokenKeeper,
    mailbox: Mailbox,
    client_type: type[Client],
    *,
    pacer: Pacing | None = None,
) -> Client:
    """A client connected to the mailbox's server and signed in, once the pacer gives the
    attempt its turn (default: the process's; or a turn taken already); the caller closes it."""
    tls = shared_tls_context(mailbox)

    async def attempt(token: AccessToken | None) -> Client:
        client = await client_type.open_connected(
            mailbox.host, mailbox.port, security=mailbox.security, tls=tls
        )
        try:
            await sign_in(ctx, mailbox, client, token)
        except BaseException:
            await client.close()
            raise
        return client

    async with (pacer or pacer_for_this_loop()).slot():
        if mailbox.credential_id is None:
            return await attempt(None)
        return await authenticate_with_refresh(keeper, mailbox.credential_id, attempt)


@asynccontextmanager
async def signed_in(
    ctx: Context,
    keeper: TokenKeeper,
    mailbox: Mailbox,
    client_type: type[Client],
    *,
    pacer: Pacing | None = None,
) -> AsyncIterator[Client]:
    """`open_signed_in`, closed on the way out."""
    client = await open_signed_in(ctx, keeper, mailbox, client_type, pacer=pacer)
    try:
        yield client
    finally:
        await client.close()

"""Benchmark: many mailboxes asking for one expiring token at once.

Runs against the provider emulator on loopback, in one run, side by side:
- floor: one refresh request sent directly (the least any client can do);
- mailgate: N coroutines call TokenKeeper.access_token() for an expired token;
- naive: N coroutines each refresh on their own (what a per-mailbox client does).
And the cached path: access_token() calls per second once the token is fresh.

    .venv/bin/python bench/single_flight.py [--concurrency 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenResponse, request_token
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import Credential
from mailgate_emulator import EmulatorState
from mailgate_emulator.serve import EmulatorServer, server_config

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "bench-secret"


def serve(state: EmulatorState) -> tuple[EmulatorServer, str]:
    server = EmulatorServer(server_config(state))
    threading.Thread(target=server.run, daemon=True).start()
    server.startup_finished.wait(10)
    host, port = server.bound_address()
    return server, f"http://{host}:{port}"


async def expire(ctx: Context, credential_id: int) -> None:
    async with ctx.db.session() as session:
        await session.execute(
            update(Credential)
            .where(Credential.id == credential_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()


def refresh_count(state: EmulatorState) -> int:
    return state.count_requests(endpoint="token", grant_type="refresh_token")


async def main(concurrency: int, rounds: int) -> None:
    state = EmulatorState()
    server, url = serve(state)
    state.register_client("microsoft", CLIENT_ID, SECRET, tenant_id=TENANT)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ctx = Context.open(
            Settings(
                home=home, database_url=f"sqlite:///{home / 'b.db'}", base_url="https://bench.test"
            )
        )
        integration = await add_integration(
            ctx,
            "bench",
            IntegrationOptions(
                provider="microsoft",
                client_id=CLIENT_ID,
                client_secret=SECRET,
                tenant=TENANT,
                authority=url,
            ),
        )
        grant = state.create_grant(
            "microsoft",
            CLIENT_ID,
            "a@contoso.example",
            integration.scopes,
            with_access_token=True,
            tenant_id=TENANT,
        )
        cred = await store_grant(
            ctx,
            integration,
            "a@contoso.example",
            "authorization_code",
            TokenResponse.from_json(
                {
                    "access_token": grant.access_token,
                    "refresh_token": grant.refresh_token,
                    "expires_in": 3600,
                    "scope": grant.scope,
                }
            ),
        )
        keeper = TokenKeeper(ctx)
        client = keeper.client_config(integration)
        floor, ours, naive = [], [], []
        ours_requests, naive_requests = [], []
        for _ in range(rounds):
            # floor: one refresh request, nothing else
            rt = state.create_grant(
                "microsoft", CLIENT_ID, "f@contoso.example", integration.scopes, tenant_id=TENANT
            ).refresh_token
            assert rt is not None
            start = time.perf_counter()
            await request_token(
                client, "refresh_token", refresh_token=rt, scope=" ".join(integration.scopes)
            )
            floor.append(time.perf_counter() - start)

            await expire(ctx, cred.id)
            keeper.invalidate(cred.id)
            before = refresh_count(state)
            start = time.perf_counter()
            await asyncio.gather(*(keeper.access_token(cred.id) for _ in range(concurrency)))
            ours.append(time.perf_counter() - start)
            ours_requests.append(refresh_count(state) - before)

            tokens = [
                state.create_grant(
                    "microsoft",
                    CLIENT_ID,
                    f"n{i}@contoso.example",
                    integration.scopes,
                    tenant_id=TENANT,
                ).refresh_token
                for i in range(concurrency)
            ]
            before = refresh_count(state)
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    request_token(
                        client,
                        "refresh_token",
                        refresh_token=t or "",
                        scope=" ".join(integration.scopes),
                    )
                    for t in tokens
                )
            )
            naive.append(time.perf_counter() - start)
            naive_requests.append(refresh_count(state) - before)

        calls = 20000
        start = time.perf_counter()
        for _ in range(calls):
            await keeper.access_token(cred.id)
        cached_rate = calls / (time.perf_counter() - start)
        await ctx.close()
    server.should_exit = True

    f, o, n = (statistics.median(x) * 1000 for x in (floor, ours, naive))
    print(f"{concurrency} concurrent requests for one expiring token, median of {rounds} rounds")
    print(f"{'':28} {'provider requests':>18} {'wall ms':>9} {'x floor':>8}")
    print(f"{'floor (one refresh)':28} {1:>18} {f:>9.1f} {1.0:>8.1f}")
    print(f"{'mailgate TokenKeeper':28} {max(ours_requests):>18} {o:>9.1f} {o / f:>8.1f}")
    print(f"{'naive: one refresh each':28} {max(naive_requests):>18} {n:>9.1f} {n / f:>8.1f}")
    print(f"cached access_token(): {cached_rate:,.0f} calls/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.concurrency, args.rounds))

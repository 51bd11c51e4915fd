"""Benchmark: how long from a message's arrival to its commit, with IMAP IDLE.

Starts the provider emulator and a real Dovecot on loopback (as the test suite does), runs
mailgate's mailbox loop with a poll interval of an hour (so only IDLE can be fast), APPENDs N
messages one at a time from a second connection and measures APPEND → receipt committed.
Side by side, in the same run: the floor — APPEND → the IDLE notification reaching a bare client
(no fetch, no database) — and what a peer polling once a minute waits on average (30 s).

    .venv/bin/python bench/idle_latency.py [--messages 50]   (needs Dovecot installed)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.dovecot import (
    DEFAULT_USERS,
    RESOURCE_SERVER,
    Dovecot,
    emulator_introspection_url,
)
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential
from tests.support.mail import ALICE, with_mailbox

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.mail.imap import ImapClient
from mailgate.mail.sasl import XOAUTH2
from mailgate.runtime.imap_mailbox import load, run_mailbox
from mailgate.store.models import Receipt


def message(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = f"bench {n}"
    mail["Message-ID"] = f"<bench-{n}-{time.time_ns()}@example.net>"
    mail.set_content("x" * 2000)
    return bytes(mail).replace(b"\n", b"\r\n")


async def append(imap: ImapClient, raw: bytes) -> None:
    tag = imap._next_tag()
    await imap._send(f"{tag} APPEND INBOX {{{len(raw)}}}\r\n".encode())
    assert (await imap._read_response()).tag == "+"
    await imap._send(raw + b"\r\n")
    while (await imap._read_response()).tag != tag:
        pass


async def receipts(ctx: Context) -> int:
    from sqlalchemy import func, select

    async with ctx.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Receipt)) or 0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def main(count: int) -> None:
    with RunningEmulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        emulator.state.register_resource_server(*RESOURCE_SERVER)
        with Dovecot(
            introspection_urls=[emulator_introspection_url(emulator)], users=DEFAULT_USERS
        ) as dovecot:
            home = Path(tmp)
            ctx = Context.open(
                Settings(
                    home=home,
                    database_url=f"sqlite:///{home / 'b.db'}",
                    base_url="https://bench.test",
                )
            )
            await with_mailbox(ctx, emulator, dovecot, poll_seconds=3600)
            stop = asyncio.Event()
            loop = asyncio.create_task(run_mailbox(ctx, "support", stop))
            tls = dovecot.ssl_context()
            async with (
                ImapClient.connect(
                    "127.0.0.1", dovecot.imaps_port, security="ssl", tls=tls
                ) as writer,
                ImapClient.connect(
                    "127.0.0.1", dovecot.imaps_port, security="ssl", tls=tls
                ) as watcher,
            ):
                await writer.login(ALICE, "alice-password")
                token = (
                    await microsoft_credential(ctx, emulator, name="bench-floor", account=ALICE)
                ).grant.access_token
                await watcher.authenticate(XOAUTH2, ALICE, token or "")
                await watcher.select("INBOX")
                while (await load(ctx, "support")).status != "idle":
                    await asyncio.sleep(0.05)
                ours, floor = [], []
                for n in range(count):
                    idle = asyncio.create_task(watcher.idle(30))
                    await asyncio.sleep(0.05)
                    before = await receipts(ctx)
                    started = time.perf_counter()
                    await append(writer, message(n))
                    await idle
                    floor.append(time.perf_counter() - started)
                    while await receipts(ctx) <= before:
                        await asyncio.sleep(0.002)
                    ours.append(time.perf_counter() - started)
            stop.set()
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await ctx.close()

    print(f"APPEND → committed, {count} messages, one at a time (ms)")
    print(f"{'':40} {'p50':>8} {'p99':>8} {'mean':>8}")
    print(
        f"{'floor: IDLE notification to a bare client':40} {pct(floor, 0.5):8.1f} {pct(floor, 0.99):8.1f} {statistics.mean(floor) * 1000:8.1f}"
    )
    print(
        f"{'mailgate: fetched and committed':40} {pct(ours, 0.5):8.1f} {pct(ours, 0.99):8.1f} {statistics.mean(ours) * 1000:8.1f}"
    )
    print(
        f"{'a peer polling every 60 s (expected)':40} {30000.0:8.1f} {59400.0:8.1f} {30000.0:8.1f}"
    )
    print(f"mailgate p50 is {pct(ours, 0.5) / max(pct(floor, 0.5), 0.001):.1f} × the floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50)
    asyncio.run(main(parser.parse_args().messages))

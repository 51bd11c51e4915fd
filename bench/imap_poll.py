"""Benchmark: `mailgate mailbox poll` of a 1,000-message backlog from a real Dovecot, against the
floor.

Starts the provider emulator and a real Dovecot on loopback (as the test suite does) and APPENDs
the seeded corpus of `bench/ingest.py` (plain, HTML, alternative, 20% with an attachment, 30%
replies). Side by side, in one run, the same messages:
- floor: imaplib over TLS, `UID FETCH (RFC822)` in batches of 100 (read-only, so nothing is
  marked), each parsed with `email.message_from_bytes` and inserted as one SQLite row, in one
  transaction;
- mailgate: `mailgate mailbox poll support` run as a command, as a user runs it (interpreter
  start, OAuth 2.0 sign-in, every message an issue or comment with its receipt, each marked
  \\Seen after its commit).

    .venv/bin/python bench/imap_poll.py [--messages 1000] [--seed 7] [--repeat 3]   (needs Dovecot installed)
"""

from __future__ import annotations

import argparse
import asyncio
import email
import imaplib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import corpus, startup
from tests.support.dovecot import (
    DEFAULT_USERS,
    RESOURCE_SERVER,
    Dovecot,
    emulator_introspection_url,
)
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, with_mailbox

from mailgate.config import Settings
from mailgate.context import Context


def append_all(dovecot: Dovecot, messages: list[bytes]) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=dovecot.ssl_context())
    imap.login(ALICE, "alice-password")
    for raw in messages:
        imap.append("INBOX", None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    imap.logout()


def floor(dovecot: Dovecot, folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    imap = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=dovecot.ssl_context())
    imap.login(ALICE, "alice-password")
    imap.select("INBOX", readonly=True)
    _, found = imap.uid("SEARCH", "ALL")
    uids = found[0].split()
    folder.mkdir(parents=True, exist_ok=True)
    database = sqlite3.connect(folder / "floor.db")
    database.execute("CREATE TABLE m (uid INTEGER, subject TEXT, sender TEXT, body BLOB)")
    with database:
        for start in range(0, len(uids), 100):
            chunk = b",".join(uids[start : start + 100]).decode()
            _, data = imap.uid("FETCH", chunk, "(RFC822)")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                raw = item[1]
                parsed = email.message_from_bytes(raw)
                database.execute(
                    "INSERT INTO m (uid, subject, sender, body) VALUES (?, ?, ?, ?)",
                    (0, str(parsed["Subject"]), str(parsed["From"]), raw),
                )
    count = database.execute("SELECT count(*) FROM m").fetchone()[0]
    database.close()
    imap.logout()
    return time.perf_counter() - started, count


def ours(home: Path) -> tuple[float, dict[str, list[int]]]:
    env = {**os.environ, "MAILGATE_HOME": str(home), "MAILGATE_LOG_LEVEL": "error"}
    env.pop("MAILGATE_DATABASE_URL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailgate", "mailbox", "poll", "support", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


async def configure(home: Path, emulator: RunningEmulator, dovecot: Dovecot) -> None:
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'mailgate.db'}"
    ctx = Context.open(Settings(home=home, database_url=url, base_url="https://bench.test"))
    await with_mailbox(ctx, emulator, dovecot, backlog="all", after="seen")
    await ctx.close()


def main(count: int, seed: int, repeat: int) -> None:
    messages = corpus(count, seed)
    with RunningEmulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        emulator.state.register_resource_server(*RESOURCE_SERVER)
        with Dovecot(
            introspection_urls=[emulator_introspection_url(emulator)], users=DEFAULT_USERS
        ) as dovecot:
            folder = Path(tmp)
            append_all(dovecot, messages)
            base, floor_count = float("inf"), 0
            mine, taken = float("inf"), 0
            for run in range(repeat):
                # Each run a fresh mailgate home: the whole backlog is taken each time.
                home = folder / f"home{run}"
                asyncio.run(configure(home, emulator, dovecot))
                seconds, floor_count = floor(dovecot, folder / f"floor{run}")
                base = min(base, seconds)
                seconds, report = ours(home)
                mine, taken = min(mine, seconds), len(report["taken"])
    print(
        f"best of {repeat} runs each (a shared machine is noisy; the best run is the least noisy)"
    )
    print(f"`mailbox poll` of {count} messages from Dovecot over TLS (OAuth 2.0 for mailgate)")
    print(f"{'':44} {'seconds':>8} {'msg/s':>8}")
    print(
        f"{'floor: imaplib FETCH ×100 + parse + SQLite':44} {base:8.2f} {floor_count / base:8.0f}"
    )
    print(f"{'mailgate mailbox poll (a whole command)':44} {mine:8.2f} {taken / mine:8.0f}")
    print(f"mailgate ÷ floor time: {mine / base:.1f}×  (taken {taken}, floor rows {floor_count})")
    print(f"of which a command's start-up (`mailgate project list`): {startup():.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    main(arguments.messages, arguments.seed, arguments.repeat)

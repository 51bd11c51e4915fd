"""Fuzzing the whole inbound path with hostile and odd mail (seeded, with a bounded budget).

Each example is a mailbox's worth of messages drawn from every kind in `tests.support.hostile`,
taken through the real pipeline (parsing processes with their limits, routing, the tracker,
receipts). Whatever the messages: nothing crashes; every message becomes an issue, a comment,
a documented skip or a quarantine with its reason; and taking them all again creates nothing.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.support.hostile import KINDS

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound.ingest import ingest
from mailgate.store.models import Issue, Receipt
from mailgate.tracker.service import add_project

# What a message may become (a receipt's status; "duplicate": its Message-ID made an issue of
# the project before). A file with no message in it is counted "empty" and has no receipt.
OUTCOMES = {"created", "commented", "ignored", "quarantined", "duplicate"}
# Quarantine reasons that are crashes, or limits no generated message comes near (the worst
# parses in a fraction of a second, the deadline is 20 s): a bug, however well it is contained.
CRASHES = ("mailgate could not process it", "the parser failed on it", "could not be parsed")

# Every kind in each example (in a drawn order, with drawn seeds), and a few more drawn.
seeds = st.integers(0, 2**32)
messages = st.tuples(
    st.permutations(sorted(KINDS)).flatmap(
        lambda kinds: st.tuples(*(st.tuples(st.just(kind), seeds) for kind in kinds))
    ),
    st.lists(st.tuples(st.sampled_from(sorted(KINDS)), seeds), max_size=6),
).map(lambda drawn: [*drawn[0], *drawn[1]])


def build(drawn: list[tuple[str, int]]) -> list[bytes]:
    return [KINDS[kind](random.Random(seed)) for kind, seed in drawn]


async def take(home: Path, raws: list[bytes]) -> None:
    settings = Settings(
        home=home, database_url=f"sqlite:///{home / 'mailgate.db'}", base_url="https://x.test"
    )
    ctx = Context.open(settings)
    try:
        await add_project(ctx, "HELP", "Help desk")
        folder = home / "mail"
        folder.mkdir()
        paths = []
        for index, raw in enumerate(raws):
            path = folder / f"{index:03d}.eml"
            path.write_bytes(raw)
            paths.append(path)
        first = await ingest(ctx, paths, "HELP")
        messages = [raw for raw in raws if raw.strip()]
        assert sum(first.values()) == len(raws)
        assert first["empty"] == len(raws) - len(messages)
        async with ctx.db.session() as session:
            receipts = list((await session.scalars(select(Receipt))).all())
            issues = list((await session.scalars(select(Issue))).all())
        # One receipt per distinct message: the same bytes twice are one message.
        assert len(receipts) == len(set(messages))
        for receipt in receipts:
            assert receipt.status in OUTCOMES, (receipt.status, receipt.reason)
            if receipt.status in ("quarantined", "ignored"):
                assert receipt.reason, receipt.id
                assert not receipt.reason.startswith(CRASHES), receipt.reason
        for issue in issues:
            assert "\r" not in issue.summary and "\n" not in issue.summary
        again = await ingest(ctx, paths, "HELP")
        assert set(again) <= {"duplicate", "empty"}, again
        async with ctx.db.session() as session:
            assert len((await session.scalars(select(Receipt))).all()) == len(receipts)
    finally:
        await ctx.close()


@settings(
    max_examples=20,
    derandomize=True,  # seeded: the same examples in every run
    deadline=None,
    database=None,
    # No shrinking: a failing example is printed as drawn, and the budget stays bounded.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages)
def test_hostile_mail_is_taken_without_crash_or_loss(drawn: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(take(Path(folder) / "home", build(drawn)))

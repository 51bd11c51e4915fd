"""Benchmark: the agents' desk at 100,000 issues and 300,000 comments in SQLite.

Builds a migrated SQLite database (seeded): 5 projects, 20,000 customers, issues spread over
two years with a summary and a description, comments on them (Poisson, about 3 an issue), all
in words drawn from a Zipf distribution (a head of common support words, a tail of 20,000
rarer ones), so the full-text index has the skew of real text. Rows go in by bulk Core inserts;
the FTS5 index is filled once they are all in, by the statements migration 0012 runs for
the rows already there (the triggers, dropped meanwhile, come back; they would take twice as
long, row by row).

Then, side by side in one run, p50 and p95 of each of these, `--repeat` times, in turn:
- mailgate: the request through the real app in-process (httpx over ASGI, no network), with an
  admin's API token: the guard, the token check, the service function, the JSON;
- floor: the very SQL statements the service function runs for it (recorded from SQLAlchemy,
  with their parameters) run bare through the sqlite3 module on the same file, rows fetched.
The requests: the issue list's first page (`/api/v1/issues`), a later page through the cursor,
a search for a rare and for a common word taken from comments (`?q=`), and one issue
(`/api/v1/issues/KEY`): the one with the most comments.

    .venv/bin/python bench/desk.py [--issues 100000] [--comments 300000] [--repeat 100]
        [--page 100] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy.orm import Session

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.store.models import Comment, Issue, Person, Project
from mailgate.store.vocabulary import IssueStatus, PersonKind
from mailgate.tracker.issues import issue_view
from mailgate.tracker.search import IssueQuery, search_issues
from mailgate.tracker.tokens import create_token
from mailgate.tracker.users import add_user
from mailgate.web.app import create_app

ADMIN = "bench-admin@example.com"
BASE_URL = "https://localhost:8443"
PROJECTS = ["HELP", "IT", "BILLING", "HR", "OPS"]
CUSTOMERS = 20_000
AGENTS = 12
PAGE = 50
CHUNK = 5_000  # issues per insert transaction
POOL = 2_000_000  # words drawn for the texts to be cut from
SPAN = timedelta(days=730)
NOW = datetime(2026, 6, 1, tzinfo=UTC)

HEAD_TEXT = """the to and a of i you is it in for that on this we with be not have can please
are was my your but from as at our if any will an do me so thanks thank hello hi
regards best issue problem error still again today yesterday since after before when
printer vpn password account login email mailbox outlook laptop screen network wifi server
invoice payment refund order delivery shipment access permission folder file attachment
update install restart reset locked expired slow crash fails failed working broken
urgent help support ticket request question customer team office meeting calendar phone
number address report monday tuesday wednesday thursday friday morning afternoon week
month time minutes hours days back sent received attached below above same new old"""
HEAD = HEAD_TEXT.split()
SYLLABLES_TEXT = "ka lo mi ne ru sa to vi zu pe dra fen gor hil jun kre lum mor nix pol bel"
SYLLABLES = SYLLABLES_TEXT.split()


def vocabulary(seed: int) -> tuple[list[str], list[float]]:
    """The words and their cumulative Zipf weights (rank r has weight 1/r^1.07)."""
    rng = random.Random(seed)
    tail: set[str] = set()
    while len(tail) < 20_000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4))))
        if word not in HEAD:
            tail.add(word)
    rare = sorted(tail)
    rng.shuffle(rare)  # the tail's ranks at random, not alphabetical
    words = HEAD + rare
    return words, list(itertools.accumulate(1 / rank**1.07 for rank in range(1, len(words) + 1)))


@dataclass
class Built:
    home: Path
    token: str
    seconds: float
    database: Path


class Writer:
    """Text of Zipf-distributed words: slices of one long draw, at random places (drawing
    each text's words anew takes most of the build's time)."""

    def __init__(self, rng: random.Random, seed: int) -> None:
        words, weights = vocabulary(seed)
        self.rng = rng
        self.pool = rng.choices(words, cum_weights=weights, k=POOL)

    def __call__(self, low: int, high: int) -> str:
        length = self.rng.randint(low, high)
        start = self.rng.randrange(POOL - length)
        return " ".join(self.pool[start : start + length]).capitalize() + "."


def rows(issues: int, comments: int, seed: int) -> Iterator[tuple[list[dict[str, Any]], ...]]:
    """Chunks of (issues, comments) rows, ids given, in order of creation."""
    rng = random.Random(seed)
    text = Writer(rng, seed)
    per_issue = Counter(rng.randrange(issues) for _ in range(comments))
    numbers = dict.fromkeys(range(1, len(PROJECTS) + 1), 0)
    comment_id = 0
    step = SPAN / issues
    for start in range(0, issues, CHUNK):
        issue_rows: list[dict[str, Any]] = []
        comment_rows: list[dict[str, Any]] = []
        for index in range(start, min(start + CHUNK, issues)):
            project = rng.choices(range(1, len(PROJECTS) + 1), weights=(5, 3, 2, 1, 1))[0]
            numbers[project] += 1
            reporter = AGENTS + 1 + rng.randrange(CUSTOMERS)
            created = NOW - SPAN + step * index + timedelta(seconds=rng.randrange(60))
            moments = sorted(
                created + timedelta(minutes=rng.randrange(1, 20 * 24 * 60))
                for _ in range(per_issue[index])
            )
            updated = max([created, *moments])
            closed = updated < NOW - timedelta(days=14) and rng.random() < 0.95
            issue_rows.append(
                {
                    "id": index + 1,
                    "project_id": project,
                    "number": numbers[project],
                    "summary": text(3, 9),
                    "description": text(20, 80),
                    "reporter_id": reporter,
                    "status": IssueStatus.CLOSED if closed else IssueStatus.OPEN,
                    "source_message_id": f"bench-{index + 1}@example.net",
                    "created_at": created,
                    "updated_at": updated,
                }
            )
            for moment in moments:
                comment_id += 1
                by_agent = rng.random() < 0.5
                comment_rows.append(
                    {
                        "id": comment_id,
                        "issue_id": index + 1,
                        "author_id": 1 + rng.randrange(AGENTS) if by_agent else reporter,
                        "body": text(8, 50),
                        "source_message_id": None if by_agent else f"c{comment_id}@example.net",
                        "created_at": moment,
                    }
                )
        yield issue_rows, comment_rows


# What migration 0012 runs to index the issues and comments already there.
FILL_INDEX = (
    "INSERT INTO issues_fts (rowid, summary, description, reporter) "
    "SELECT issues.id, summary, description, email || ' ' || coalesce(name, '') "
    "FROM issues JOIN people ON people.id = issues.reporter_id",
    "INSERT INTO comments_fts (comments_fts) VALUES ('rebuild')",
)


def loader_pragmas(connection: sqlite3.Connection, _record: object) -> None:
    """A loader's choices, not the app's: no fsync, a large page cache."""
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-262144")


async def build(home: Path, issues: int, comments: int, seed: int) -> Built:
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'mailgate.db'}",
        base_url=BASE_URL,
    )
    started = time.perf_counter()
    ctx = Context.open(settings)  # creates and migrates the database
    try:
        await add_user(ctx, ADMIN, "admin", "bench password, long enough")
        _, token = await create_token(ctx, ADMIN, "bench")
    finally:
        await ctx.close()
    engine = sa.create_engine(settings.database_url)
    sa.event.listen(engine, "connect", loader_pragmas)
    with engine.begin() as connection:
        # The search index is filled at the end, in one go: twice as fast as row by row
        # through the triggers, which come back as they were.
        triggers = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_fts_%'"
        ).all()
        for name, _ in triggers:
            connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
        connection.execute(
            sa.insert(Project),
            [
                {"id": n, "key": key, "name": key.title(), "created_at": NOW - SPAN}
                for n, key in enumerate(PROJECTS, 1)
            ],
        )
        connection.execute(
            sa.insert(Person),
            [
                {
                    "id": n,
                    "email": f"agent{n}@example.com",
                    "name": f"Agent {n}",
                    "kind": PersonKind.AGENT,
                }
                for n in range(1, AGENTS + 1)
            ]
            + [
                {
                    "id": AGENTS + n,
                    "email": f"customer{n}@example.net",
                    "name": f"Customer {n}",
                    "kind": PersonKind.CUSTOMER,
                }
                for n in range(1, CUSTOMERS + 1)
            ],
        )
    for issue_rows, comment_rows in rows(issues, comments, seed):
        with engine.begin() as connection:
            connection.execute(sa.insert(Issue), issue_rows)
            if comment_rows:
                connection.execute(sa.insert(Comment), comment_rows)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE projects SET next_number = 1 + "
            "(SELECT coalesce(max(number), 0) FROM issues WHERE project_id = projects.id)"
        )
        for statement in FILL_INDEX:
            connection.exec_driver_sql(statement)
        for _, statement in triggers:
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return Built(home, token, time.perf_counter() - started, home / "mailgate.db")


# -- the floor: the service's own statements, bare -----------------------------------------------

Statements = list[tuple[str, Any]]


def statements_of(engine: sa.Engine, read: Callable[[Session], object]) -> Statements:
    """The SQL statements, with their parameters, that a service function runs, in order."""
    seen: Statements = []

    def record(*args: Any) -> None:
        _connection, _cursor, statement, parameters, _context, _many = args
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            read(session)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def run_bare(database: sqlite3.Connection, statements: Statements) -> None:
    """The floor: the statements through the sqlite3 module, every row fetched."""
    for statement, parameters in statements:
        database.execute(statement, parameters).fetchall()


def search_words(database: sqlite3.Connection) -> tuple[str, str]:
    """A rare and a common word, both taken from the comments' text (the index's own counts).
    The rare one is long, so that few words start with it: a search's last word is a prefix."""
    database.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, comments_fts, row)")
    rare = database.execute(
        "SELECT term FROM temp.vocab WHERE doc BETWEEN 5 AND 20 "
        "ORDER BY length(term) DESC, term LIMIT 1"
    ).fetchone()
    common = database.execute(
        "SELECT term FROM temp.vocab WHERE doc BETWEEN 5000 AND 20000 AND length(term) > 4 "
        "ORDER BY doc, term LIMIT 1"
    ).fetchone()
    return rare[0], common[0] if common else rare[0]


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    path: str  # under /api/v1
    statements: Statements


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


async def timed(client: httpx2.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    answer = await client.get(path)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return elapsed


async def cases(client: httpx2.AsyncClient, engine: sa.Engine, page: int) -> list[Case]:
    """What to measure: the paths, and the statements the service runs for each."""
    cursor: str | None = None
    for _ in range(page - 1):  # to the later page as a client gets there, a page at a time
        params = {"limit": PAGE} if cursor is None else {"limit": PAGE, "cursor": cursor}
        answer = await client.get("/issues", params=params)
        assert answer.status_code == 200, answer.text
        cursor = answer.json()["next"]
    assert cursor is not None, "fewer issues than --page pages"
    with engine.connect() as connection:
        database = connection.connection.driver_connection
        assert isinstance(database, sqlite3.Connection)
        words = dict.fromkeys(search_words(database))
        key, replies = database.execute(
            "SELECT projects.key || '-' || issues.number, count(*) FROM comments "
            "JOIN issues ON issues.id = comments.issue_id "
            "JOIN projects ON projects.id = issues.project_id "
            "GROUP BY comments.issue_id ORDER BY count(*) DESC, issues.id LIMIT 1"
        ).fetchone()

    def listed(query: IssueQuery, after: str | None = None) -> Statements:
        return statements_of(
            engine, lambda session: search_issues(session, query, cursor=after, limit=PAGE)
        )

    return [
        Case("issue list, first page", f"/issues?limit={PAGE}", listed(IssueQuery())),
        Case(
            f"issue list, page {page} by cursor",
            f"/issues?limit={PAGE}&cursor={cursor}",
            listed(IssueQuery(), cursor),
        ),
        *(
            Case(
                f'search "{word}" ({count_found(engine, word):,} issues)',
                f"/issues?limit={PAGE}&q={word}",
                listed(IssueQuery(text=word)),
            )
            for word in words
        ),
        Case(
            f"issue {key} ({replies} comments)",
            f"/issues/{key}",
            statements_of(engine, lambda session: issue_view(session, key)),
        ),
    ]


def count_found(engine: sa.Engine, word: str) -> int:
    """How many issues a search for `word` finds (every page)."""
    total = 0
    cursor: str | None = None
    with Session(engine) as session:
        while True:
            page = search_issues(session, IssueQuery(text=word), cursor=cursor, limit=200)
            total += len(page.items)
            if page.next is None:
                return total
            cursor = page.next


async def measure(built: Built, repeat: int, page: int) -> None:
    settings = Settings(
        home=built.home, database_url=f"sqlite:///{built.database}", base_url=BASE_URL
    )
    ctx = Context.open(settings)
    engine = sa.create_engine(settings.database_url)
    database = sqlite3.connect(built.database)
    try:
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=create_app(ctx, run_workers=False)),
            base_url=settings.base_url + "/api/v1",
            headers={"authorization": f"Bearer {built.token}"},
        ) as client:
            chosen = await cases(client, engine, page)
            print(f"{repeat} requests each after 3 to warm up, floor and mailgate in turn; ms")
            print(
                f"{'':<40} {'floor p50':>9} {'p95':>7} {'mailgate p50':>13} {'p95':>7} "
                f"{'p50 ratio':>10}"
            )
            for case in chosen:
                for _ in range(3):
                    run_bare(database, case.statements)
                    await timed(client, case.path)
                bare: list[float] = []
                ours: list[float] = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    run_bare(database, case.statements)
                    bare.append(time.perf_counter() - started)
                    ours.append(await timed(client, case.path))
                (b50, b95), (o50, o95) = quantiles(bare), quantiles(ours)
                print(
                    f"{case.label:<40} {b50 * 1000:>9.2f} {b95 * 1000:>7.2f} "
                    f"{o50 * 1000:>13.2f} {o95 * 1000:>7.2f} {o50 / b50:>9.1f}×"
                )
    finally:
        database.close()
        engine.dispose()
        await ctx.close()


async def main(
    issues: int, comments: int, repeat: int, page: int, seed: int, keep: Path | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = keep or Path(tmp) / "home"
        saved = home / "bench-token"
        if keep and saved.exists():  # built by an earlier run with --keep
            built = Built(home, saved.read_text(), 0.0, home / "mailgate.db")
            print(f"the database built before in {home}")
        else:
            built = await build(home, issues, comments, seed)
            saved.write_text(built.token)
            size = built.database.stat().st_size / 2**20
            print(
                f"{issues:,} issues, {comments:,} comments in SQLite: built in "
                f"{built.seconds:.0f} s ({size:,.0f} MB; bulk Core inserts, then the FTS5 index "
                "filled in one go)"
            )
        await measure(built, repeat, page)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--comments", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--page", type=int, default=100, help="the later page, by cursor")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep", type=Path, help="build the database in DIR and keep it; use it if it is there"
    )
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.issues,
            arguments.comments,
            arguments.repeat,
            arguments.page,
            arguments.seed,
            arguments.keep,
        )
    )

"""`mailgate ingest`: .eml files, mbox files and Maildir folders through the same pipeline as
mail from a mailbox (a migration path from other systems)."""

from __future__ import annotations

import asyncio
import itertools
import mailbox as stdlib_mailbox
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.parse import InboundMessage, parse_many
from mailgate.inbound.route import HANDLERS, RouteOptions
from mailgate.tracker.service import get_project

# Messages committed together: one commit per batch.
BATCH = 100
# Parsing processes (spawned when there is more than one batch): parsing overlaps the writes.
PARSERS = max(1, min(os.cpu_count() or 1, 4))
SUMMARY_ORDER = ("created", "commented", "ignored", "quarantined", "duplicate", "received")


def _kind(path: Path) -> str:
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return "maildir"
        return "folder"
    with path.open("rb") as fh:
        head = fh.read(5)
    return "mbox" if head == b"From " else "eml"


def check_paths(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise BadInput(
                f"{path} does not exist: give .eml files, mbox files or Maildir folders."
            )


def messages(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(origin, raw bytes) of every message under `paths`, in a stable order."""
    for path in paths:
        kind = _kind(path)
        if kind == "eml":
            raw = path.read_bytes()
            if raw.strip():  # an empty file holds no message
                yield str(path), raw
        elif kind == "mbox":
            for index, raw in enumerate(mbox_messages(path)):
                yield f"{path}#{index}", raw
        elif kind == "maildir":
            maildir = stdlib_mailbox.Maildir(path, create=False)
            for key in sorted(maildir.keys()):
                yield f"{path}/{key}", maildir.get_bytes(key)
        else:
            yield from messages(sorted(p for p in path.rglob("*.eml") if p.is_file()))


def mbox_messages(path: Path) -> Iterator[bytes]:
    """The messages of an mbox file, read as a stream: split where the stdlib's `mailbox.mbox`
    splits (a line starting with "From "; the blank line before it is the separator's)."""
    lines: list[bytes] = []
    with path.open("rb") as fh:
        for line in fh:
            if line.startswith(b"From "):
                if lines:
                    yield _without_separator(lines)
                lines = []
                continue
            lines.append(line)
    if lines:
        yield _without_separator(lines)


def _without_separator(lines: list[bytes]) -> bytes:
    if lines and lines[-1] == b"\n":
        lines = lines[:-1]
    return b"".join(lines)


async def ingest(
    ctx: Context,
    paths: list[Path],
    project: str,
    handler: str = "create-or-comment",
    on_message: Callable[[str, str], None] | None = None,
) -> Counter[str]:
    """Take every message; returns how many became what (created, commented, duplicate …)."""
    check_paths(paths)
    if handler not in HANDLERS:
        raise BadInput(f"Unknown handler {handler!r}: use {', '.join(HANDLERS)}.")
    await ctx.db.run(get_project, project)
    # A migration brings a sender's whole history at once: no flood limit here.
    destination = Destination(
        project=project, options=RouteOptions(handler=handler, max_per_sender_hour=0)
    )
    summary: Counter[str] = Counter()

    async def take(batch: list[tuple[str, bytes]], parsed: list[InboundMessage] | None) -> None:
        incoming = [
            pipeline.Incoming(pipeline.MessageRef(), raw, origin, parsed[i] if parsed else None)
            for i, (origin, raw) in enumerate(batch)
        ]
        taken = await pipeline.take_many(ctx, None, incoming, destination=destination)
        for (origin, _raw), result in zip(batch, taken, strict=True):
            status = result.status if result.new else "duplicate"
            summary[status] += 1
            if on_message:
                on_message(origin, status)

    batches = _batches(messages(paths))
    first = next(batches, None)
    second = next(batches, None)
    if first is None:
        return summary
    if second is None or PARSERS < 2:
        # One batch (or one core): parsed in the write thread, no process to start.
        for batch in itertools.chain([first], [second] if second else [], batches):
            await take(batch, None)
        return summary
    await _parse_aside(itertools.chain([first, second], batches), take)
    return summary


def _batches(items: Iterable[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, BATCH)):
        yield batch


async def _parse_aside(
    batches: Iterable[list[tuple[str, bytes]]],
    take: Callable[[list[tuple[str, bytes]], list[InboundMessage] | None], Awaitable[None]],
) -> None:
    """Parse batches in other processes while earlier ones are written, in order; a few batches
    ahead at most (memory stays bounded). A batch whose parsing process failed is parsed in the
    write thread instead, so a crash there loses nothing."""
    loop = asyncio.get_running_loop()
    ahead: deque[tuple[list[tuple[str, bytes]], asyncio.Future[list[InboundMessage]]]] = deque()
    # "spawn": the parsing processes start clean (no copy of this process's threads and locks).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PARSERS, mp_context=context) as pool:

        async def take_oldest() -> None:
            batch, parsing = ahead.popleft()
            try:
                parsed: list[InboundMessage] | None = await parsing
            except Exception:
                parsed = None
            await take(batch, parsed)

        for batch in batches:
            raws = [raw for _origin, raw in batch]
            ahead.append((batch, loop.run_in_executor(pool, parse_many, raws)))
            if len(ahead) > 2 * PARSERS:
                await take_oldest()
        while ahead:
            await take_oldest()

"""`mailgate ingest`: .eml files, mbox files and Maildir folders through the same pipeline as
mail from a mailbox (a migration path from other systems)."""

from __future__ import annotations

import asyncio
import itertools
import mailbox as stdlib_mailbox
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import check_route_options
from mailgate.inbound.parse import InboundMessage
from mailgate.inbound.parsers import Unparsable, parse_all
from mailgate.inbound.route import HANDLERS, RouteOptions
from mailgate.sandbox.pool import ParserPool
from mailgate.store.vocabulary import Handler, ReceiptStatus
from mailgate.tracker.service import get_project

# Messages committed together: one commit per batch.
BATCH = 100
BATCH_BYTES = 32 * 1024 * 1024
WARM_UP_BYTES = 4 * 1024 * 1024  # more input than this is surely more than one batch
SUMMARY_ORDER = (
    ReceiptStatus.CREATED,
    ReceiptStatus.COMMENTED,
    ReceiptStatus.IGNORED,
    ReceiptStatus.QUARANTINED,
    ReceiptStatus.DUPLICATE,
    ReceiptStatus.RECEIVED,
    "empty",  # a file with no message in it
)


def _kind(path: Path) -> str:
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return "maildir"
        return "folder"
    with path.open("rb") as fh:
        head = fh.read(5)
    return "mbox" if head == b"From " else "eml"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def check_paths(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise BadInput(
                f"{path} does not exist: give .eml files, mbox files or Maildir folders."
            )


def messages(
    paths: list[Path], on_empty: Callable[[str], None] | None = None
) -> Iterator[tuple[str, bytes]]:
    """(origin, raw bytes) of every message under `paths`, in a stable order. A file with
    nothing in it holds no message: it is told to `on_empty` instead. A file that cannot be
    read stops the ingest with its name (BadInput)."""
    for path in paths:
        try:
            yield from _messages_of(path, on_empty)
        except OSError as exc:
            raise BadInput(
                f"{exc.filename or path} cannot be read ({exc.strerror or exc}): fix it, or "
                "leave it out, and run ingest again (what was taken is recognised)."
            ) from None


def _messages_of(path: Path, on_empty: Callable[[str], None] | None) -> Iterator[tuple[str, bytes]]:
    kind = _kind(path)
    if kind == "eml":
        raw = path.read_bytes()
        if raw.strip():
            yield str(path), raw
        elif on_empty is not None:
            on_empty(str(path))
    elif kind == "mbox":
        for index, raw in enumerate(mbox_messages(path)):
            yield f"{path}#{index}", raw
    elif kind == "maildir":
        maildir = stdlib_mailbox.Maildir(path, create=False)
        for key in sorted(maildir.keys()):
            try:
                raw = maildir.get_bytes(key)
            except KeyError:
                continue  # deleted since the folder was listed (a live Maildir): gone
            yield f"{path}/{key}", raw
    else:
        found = sorted(p for p in path.rglob("*.eml") if p.is_file())
        yield from messages(found, on_empty)


def mbox_messages(path: Path) -> Iterator[bytes]:
    """The messages of an mbox file, read as a stream: split where the stdlib's `mailbox.mbox`
    splits (a line starting with "From "; the blank line before it is the separator's)."""
    lines: list[bytes] = []
    started = False  # text before the first "From " line is no message
    with path.open("rb") as fh:
        for line in fh:
            if line.startswith(b"From "):
                if started:
                    yield _without_separator(lines)
                started, lines = True, []
                continue
            lines.append(line)
    if started:
        yield _without_separator(lines)


def _without_separator(lines: list[bytes]) -> bytes:
    if lines and lines[-1] == b"\n":
        lines = lines[:-1]
    return b"".join(lines)


@dataclass(frozen=True)
class Unreadable:
    """A file that could not be read, and why (the OS's words)."""

    reason: str


async def parse_files(
    paths: list[Path], parsers: ParserPool, chunk: int = 32
) -> AsyncIterator[tuple[Path, InboundMessage | Unparsable | Unreadable]]:
    """Each file parsed exactly as a mailbox's message is — in the parsing processes, with
    their limits — in order, `chunk` files held at a time (`mailgate parse`)."""
    for start in range(0, len(paths), chunk):
        raws: dict[int, bytes] = {}
        results: dict[int, InboundMessage | Unparsable | Unreadable] = {}
        for index, path in enumerate(paths[start : start + chunk]):
            try:
                raws[index] = path.read_bytes()
            except OSError as exc:
                results[index] = Unreadable(exc.strerror or type(exc).__name__)
        parsed = await parse_all(parsers, list(raws.values()))
        results.update(zip(raws, parsed, strict=True))
        for index, path in enumerate(paths[start : start + chunk]):
            yield path, results[index]


async def ingest(
    ctx: Context,
    paths: list[Path],
    project: str,
    handler: str = "create-or-comment",
    on_message: Callable[[str, str], None] | None = None,
    limits: dict[str, int | None] | None = None,
) -> Counter[str]:
    """Take every message; returns how many became what (created, commented, duplicate …;
    "empty": a file with no message in it)."""
    check_paths(paths)
    if handler not in HANDLERS:
        raise BadInput(f"Unknown handler {handler!r}: use {', '.join(HANDLERS)}.")
    await ctx.db.run(get_project, project)

    given = check_route_options({k: v for k, v in (limits or {}).items() if v is not None})
    # A migration brings a sender's whole history at once: no flood or comment-rate limit.
    options = RouteOptions(
        handler=Handler(handler), max_per_sender_hour=0, max_comments_per_issue_hour=0, **given
    )
    destination = Destination(project=project, options=options)
    summary: Counter[str] = Counter()
    if sum(_size(path) for path in paths) > WARM_UP_BYTES:
        ctx.parsers.warm_up()  # they start while the first files are read

    def count(origin: str, status: str) -> None:
        summary[status] += 1
        if on_message:
            on_message(origin, status)

    async def parse(batch: Batch) -> list[pipeline.Incoming]:
        incoming = [pipeline.Incoming(pipeline.MessageRef(), raw, origin) for origin, raw in batch]
        return await pipeline.prepare(ctx, None, incoming, destination)

    async def take(incoming: list[pipeline.Incoming]) -> None:
        taken = await pipeline.take_many(ctx, None, incoming, destination=destination)
        for message, result in zip(incoming, taken, strict=True):
            count(message.origin or "", result.status if result.new else ReceiptStatus.DUPLICATE)

    await _pipelined(
        _batches(messages(paths, on_empty=lambda origin: count(origin, "empty"))), parse, take
    )
    return summary


Batch = list[tuple[str, bytes]]


async def _pipelined(
    batches: Iterable[Batch],
    parse: Callable[[Batch], Coroutine[Any, Any, list[pipeline.Incoming]]],
    take: Callable[[list[pipeline.Incoming]], Awaitable[None]],
) -> None:
    """Read, parse and write at once: a writer takes batches in order while the next ones are
    read and parsed (in the parsing processes) — a few ahead at most, so memory stays
    bounded."""
    queue: asyncio.Queue[asyncio.Task[list[pipeline.Incoming]] | None]
    queue = asyncio.Queue(maxsize=2)
    # Only the batches not yet written are held (each task holds its parsed messages).
    parsing: set[asyncio.Task[list[pipeline.Incoming]]] = set()

    async def writer() -> None:
        while (item := await queue.get()) is not None:
            incoming = await item
            parsing.discard(item)
            await take(incoming)

    writing = asyncio.create_task(writer())
    try:
        for batch in itertools.chain(batches, [None]):
            item: asyncio.Task[list[pipeline.Incoming]] | None = None
            if batch is not None:
                item = asyncio.create_task(parse(batch))
                parsing.add(item)
            put = asyncio.ensure_future(queue.put(item))
            await asyncio.wait({put, writing}, return_when=asyncio.FIRST_COMPLETED)
            if writing.done() and not put.done():
                put.cancel()
                break
        await writing
    finally:
        writing.cancel()
        for task in parsing:
            task.cancel()


def _batches(items: Iterable[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """At most BATCH messages and BATCH_BYTES bytes each (one large message may exceed it)."""
    batch: list[tuple[str, bytes]] = []
    held = 0
    for item in items:
        if batch and (len(batch) == BATCH or held + len(item[1]) > BATCH_BYTES):
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += len(item[1])
    if batch:
        yield batch

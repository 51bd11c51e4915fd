"""`mailgate ingest`: .eml files, mbox files and Maildir folders through the same pipeline as
mail from a mailbox (a migration path from other systems)."""

from __future__ import annotations

import mailbox as stdlib_mailbox
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound import pipeline
from mailgate.inbound.handle import Destination
from mailgate.inbound.route import HANDLERS, RouteOptions
from mailgate.tracker.service import get_project

# Messages committed together: one commit per batch, each message in its own savepoint.
BATCH = 100
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
            yield str(path), path.read_bytes()
        elif kind == "mbox":
            box = stdlib_mailbox.mbox(path, create=False)
            for index, key in enumerate(box.keys()):
                yield f"{path}#{index}", box.get_bytes(key)
        elif kind == "maildir":
            maildir = stdlib_mailbox.Maildir(path, create=False)
            for key in sorted(maildir.keys()):
                yield f"{path}/{key}", maildir.get_bytes(key)
        else:
            yield from messages(sorted(p for p in path.rglob("*.eml") if p.is_file()))


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
    async with ctx.db.session() as session:
        await get_project(session, project)
    # A migration brings a sender's whole history at once: no flood limit here.
    destination = Destination(
        project=project, options=RouteOptions(handler=handler, max_per_sender_hour=0)
    )
    summary: Counter[str] = Counter()
    for origin, raw in messages(paths):
        taken = await pipeline.take(
            ctx, None, pipeline.MessageRef(), raw, destination=destination, origin=origin
        )
        status = taken.status if taken.new else "duplicate"
        summary[status] += 1
        if on_message:
            on_message(origin, status)
    return summary

"""`mailgate parse` (messages in files, parsed as a mailbox would, nothing stored) and `mailgate
ingest` (mail from files through the same pipeline as a mailbox)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from mailgate.cli.common import (
    AttachmentOpt,
    AttachmentsOpt,
    JsonFlag,
    emit,
    fail,
    log_to_stderr,
    run,
)
from mailgate.config import load_settings
from mailgate.context import Context, parser_pool
from mailgate.errors import MailgateError
from mailgate.inbound.ingest import SUMMARY_ORDER, Unreadable, parse_files
from mailgate.inbound.ingest import ingest as run_ingest
from mailgate.inbound.parsers import Unparsable

app = typer.Typer()


@app.command()
def parse(
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml).")],
    as_json: JsonFlag = False,
) -> None:
    """Parse messages exactly as a mailbox would (with the same limits); store nothing."""
    log_to_stderr("warning")
    failed = asyncio.run(_parse_files(files, as_json))
    if failed:
        raise typer.Exit(2)


async def _parse_files(files: list[Path], as_json: bool) -> bool:
    """Print each file's fields (or why there are none); True when any file failed."""
    failed = False
    try:
        parsers = parser_pool(load_settings())
    except MailgateError as error:
        fail(error)
    try:
        async for path, parsed in parse_files(files, parsers):
            if isinstance(parsed, Unreadable | Unparsable):
                failed = True
                reason = (
                    f"cannot read: {parsed.reason}"
                    if isinstance(parsed, Unreadable)
                    else parsed.reason
                )
                if as_json:
                    typer.echo(json.dumps({"file": str(path), "error": reason}))
                else:
                    typer.echo(f"mailgate: {path}: {reason}.", err=True)
                continue
            data = parsed.as_json(str(path))
            if as_json:
                typer.echo(json.dumps(data, ensure_ascii=False))
            else:
                sender = data["from"]
                typer.echo(
                    f"{path}: {data['subject']!r} from {sender['address'] or '(unknown)'}, "
                    f"{len(data['attachments'])} attachment(s)"
                    + (f", automated: {data['automated']}" if data["automated"] else "")
                    + (f", keys: {' '.join(data['issue_keys'])}" if data["issue_keys"] else "")
                )
    finally:
        await parsers.close()
    return failed


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, mbox files, Maildir folders.")],
    project: Annotated[str, typer.Option("--project", help="Project key.")],
    handler: Annotated[
        str, typer.Option("--handler", help="create-or-comment, create or comment.")
    ] = "create-or-comment",
    max_attachment_bytes: AttachmentOpt = None,
    max_attachments_bytes: AttachmentsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Bring in mail from files through the same pipeline as a mailbox."""
    limits = {
        "max_attachment_bytes": max_attachment_bytes,
        "max_attachments_bytes": max_attachments_bytes,
    }

    async def work(ctx: Context) -> dict[str, int]:
        if sys.stderr.isatty() and not as_json:
            with Progress(transient=True) as progress:
                task = progress.add_task("ingesting", total=None)
                summary = await run_ingest(
                    ctx, paths, project, handler, lambda _o, _s: progress.advance(task), limits
                )
        else:
            summary = await run_ingest(ctx, paths, project, handler, limits=limits)
        return {name: summary.get(name, 0) for name in SUMMARY_ORDER if name in summary}

    counts = run(work)
    emit(
        counts,
        as_json,
        lambda: ", ".join(f"{n} {name}" for name, n in counts.items()) or "no messages",
    )

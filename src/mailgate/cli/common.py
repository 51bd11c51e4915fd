"""What every command shares: running a service function in a context, printing its result (JSON
or text), and turning errors into one sentence on stderr and an exit status.

Standard output carries only the result (with --json, only the JSON); logs and warnings go to
standard error. Exit status: 0 success, 1 the operation failed, 2 bad usage or input.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from mailgate.actor import act_as, command_line
from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError
from mailgate.logs import configure_logging, redact_text
from mailgate.steps import StepReport

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON and nothing else.")]

# Options that more than one group of commands takes, with the same meaning.
CredentialOpt = Annotated[
    str | None, typer.Option("--credential", help="Credential ID (OAuth 2.0).")
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="File holding a password (deprecated for Microsoft and Google)."
    ),
]
CaFileOpt = Annotated[
    str | None, typer.Option("--ca-file", help="PEM file of a private CA to trust.")
]
SaslOpt = Annotated[
    str | None, typer.Option("--sasl", help="auto (default), OAUTHBEARER or XOAUTH2.")
]
AttachmentOpt = Annotated[
    int | None,
    typer.Option(
        "--max-attachment-bytes",
        help="A larger attachment is not kept; the issue says so (default 10 MB).",
    ),
]
AttachmentsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-attachments-bytes",
        help="Attachments of one message kept up to this total (default 25 MB).",
    ),
]


def log_to_stderr(default_level: str) -> None:
    """Logs go to stderr, at MAILGATE_LOG_LEVEL or the command's default."""
    configure_logging(os.environ.get("MAILGATE_LOG_LEVEL", default_level))


def fail(error: MailgateError) -> NoReturn:
    """End the command: the error in one sentence on stderr, its exit status."""
    typer.echo(f"mailgate: {redact_text(str(error))}", err=True)
    raise typer.Exit(error.exit_code)


def run(work: Callable[[Context], Awaitable[T]], *, log_level: str = "warning") -> T:
    """Open the context (migrating on first use), run `work`, close, map errors to exits.
    Logs go to stderr at `log_level` unless MAILGATE_LOG_LEVEL says otherwise."""
    log_to_stderr(log_level)

    async def main() -> T:
        act_as(command_line())  # who the audit log names
        ctx = Context.open()
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        return asyncio.run(main())
    except MailgateError as error:
        fail(error)


def emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    """Print the result: `data` as JSON with --json, else the text made by `text`."""
    if as_json:
        typer.echo(json.dumps(data, indent=None, sort_keys=False))
    else:
        typer.echo(text())


def warn(messages: list[str]) -> None:
    for message in messages:
        typer.echo(f"warning: {message}", err=True)


def same_options(
    template: Callable[..., None],
) -> Callable[[Callable[[dict[str, Any]], None]], Callable[..., None]]:
    """A `set` command takes every option of its `add`: the signature is written once (on
    `add`); the decorated body receives the given values as a dict."""

    def decorate(body: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        @functools.wraps(template)
        def command(**values: Any) -> None:
            body(values)

        command.__doc__ = body.__doc__
        command.__name__ = command.__qualname__ = body.__name__
        return command

    return decorate


Save = Callable[..., Awaitable[tuple[dict[str, Any], list[str]]]]


def save_and_show(save: Save, values: dict[str, Any], *, new: bool) -> None:
    """`add` and `set` of a server: save, print the warnings, show what is stored."""
    view, warnings = run(lambda ctx: save(ctx, values["name"], values, new=new))
    warn(warnings)
    emit(view, values["as_json"], lambda: key_values(view))


def parse_id(value: str, what: str, where: str) -> int:
    """An ID the user typed: a positive number, else bad input saying where to find one."""
    try:
        parsed = int(value)
        if not 1 <= parsed < 2**31:
            raise ValueError(value)
        return parsed
    except ValueError:
        raise BadInput(f"{what} {value!r} is not a number: {where}.") from None


def parse_credential_id(value: str) -> int:
    return parse_id(value, "Credential ID", "`mailgate credential list` shows the IDs")


def read_password(path: Path | None) -> str | None:
    """The password in the file given by --password-file (its line end is no part of it)."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise BadInput(
            f"The password file {path} cannot be read ({reason}): give a readable text file."
        ) from None


def key_values(data: dict[str, Any]) -> str:
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, list):
            value = " ".join(str(v) for v in value) if value else "-"
        elif value is None:
            value = "-"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def steps_text(result: StepReport) -> str:
    """A connection test's steps, numbered, then what to do when one failed."""
    lines = [
        f"{index}. {'ok  ' if s.ok else 'FAIL'}  {s.step}: {s.detail}"
        for index, s in enumerate(result.steps, 1)
    ]
    if result.diagnosis:
        lines.append(f"\n{result.diagnosis}")
    return "\n".join(lines)

"""The `mailgate` command: its top level, and `main`, the entry point.

Each command, or group of commands, lives in a module of its own under mailgate.cli, and that
module is imported only when one of its commands runs: importing the services behind every
command would take most of the start-up time (`mailgate --help` took three times as long), and
a command needs only its own. `mailgate --help` lists them all from INDEX without importing any.

A new command goes on the `app` of its group's module; a new group, or a new command at the top,
also needs its line in INDEX (tests/unit/cli/test_cli_index.py holds the two together).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from mailgate import __version__
from mailgate.errors import MailgateError
from mailgate.logs import redact_text


@dataclass(frozen=True)
class Entry:
    """A command (or, with `group`, a group of commands) at the top of `mailgate`."""

    module: str  # under mailgate.cli; it defines `app`, a typer.Typer
    summary: str  # what `mailgate --help` shows; the first paragraph of the command's own help
    group: bool = False


# In the order `mailgate --help` lists them.
INDEX = {
    "migrate": Entry(
        "migrate", "Apply database migrations (every command also does this on first use)."
    ),
    "serve": Entry("serve", "Web UI, REST API and mail workers in one process, over HTTPS."),
    "worker": Entry("worker", "Mail workers only, no web server (run many, on many hosts)."),
    "parse": Entry(
        "files", "Parse messages exactly as a mailbox would (with the same limits); store nothing."
    ),
    "ingest": Entry("files", "Bring in mail from files through the same pipeline as a mailbox."),
    "integration": Entry("integration", "OAuth 2.0 clients registered at a provider.", group=True),
    "credential": Entry("credential", "Authorized accounts and their tokens.", group=True),
    "mailbox": Entry(
        "mailbox", "Incoming mail servers (IMAP, POP3) read with OAuth 2.0.", group=True
    ),
    "project": Entry("project", "Projects of the built-in tracker.", group=True),
    "issue": Entry("issue", "Issues of the built-in tracker.", group=True),
    "quarantine": Entry("quarantine", "Messages that could not be processed.", group=True),
    "keys": Entry("keys", "Encryption keys of stored secrets.", group=True),
    "smtp": Entry("smtp", "Outgoing mail servers (SMTP) with OAuth 2.0.", group=True),
    "outbox": Entry("outbox", "Notifications waiting to be sent, and sent.", group=True),
    "user": Entry("user", "People who sign in to the web UI: admins and agents.", group=True),
    "token": Entry(
        "token", "API tokens: a user's key to the REST API, with that user's role.", group=True
    ),
    "audit": Entry("audit", "Who did what and when.", group=True),
    "webhook": Entry(
        "webhook",
        "URLs told of the desk's events (Standard Webhooks), each delivery signed.",
        group=True,
    ),
}


def load(name: str) -> TyperCommand | TyperGroup:
    """The command `name` of INDEX, importing its module."""
    entry = INDEX[name]
    module = importlib.import_module(f"mailgate.cli.{entry.module}")
    commands: typer.Typer = module.app
    if entry.group:
        commands = typer.Typer()
        commands.add_typer(module.app, name=name)
    command = typer.main.get_group(commands).commands[name]
    assert isinstance(command, TyperCommand | TyperGroup)
    return command


class LazyGroup(TyperGroup):
    """The top of `mailgate`: lists every command of INDEX by its summary, and imports a
    command's module only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.loaded: set[str] = set()
        for name, entry in INDEX.items():
            self.commands[name] = TyperCommand(name, help=entry.summary)

    # `Any`: the types of typer's own copy of click, which it does not export.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in INDEX and name not in self.loaded:
            self.commands[name] = load(name)
            self.loaded.add(name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    help="mailgate: email to issues, with OAuth 2.0 for IMAP, POP3 and SMTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def main_callback(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


def main() -> None:
    """Entry point: usage errors exit 2 with one sentence, like every other bad input."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except MailgateError as error:
        typer.echo(f"mailgate: {redact_text(str(error))}", err=True)
        sys.exit(error.exit_code)
    except TyperException as error:
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        if message:  # empty when a command group was called without a command: help was shown
            command = getattr(getattr(error, "ctx", None), "command_path", "mailgate")
            typer.echo(f"mailgate: {message} (see `{command} --help`)", err=True)
        sys.exit(getattr(error, "exit_code", 2) or 2)
    sys.exit(code if isinstance(code, int) else 0)

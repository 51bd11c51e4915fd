"""`mailgate issue`: issues of the built-in tracker, and an agent's comments on them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, key_values, run, table
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker.issues import comment_as_agent, list_issues, set_status, show_issue

app = typer.Typer(help="Issues of the built-in tracker.", no_args_is_help=True)


@app.command("list")
def issue_list(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List issues."""
    views = run(lambda ctx: list_issues(ctx, project))
    emit(views, as_json, lambda: table(views, ["key", "status", "reporter", "comments", "summary"]))


def _issue_text(view: dict[str, Any]) -> str:
    head = {k: v for k, v in view.items() if k not in ("comments", "attachments", "description")}
    lines = [key_values(head), "", view["description"] or "(no description)"]
    for attachment in view["attachments"]:
        lines.append(f"[attachment] {attachment['filename']} ({attachment['size']} bytes)")
    for comment in view["comments"]:
        lines += ["", f"— {comment['author']}, {comment['created_at']}", comment["body"]]
    return "\n".join(lines)


@app.command("show")
def issue_show(key: str, as_json: JsonFlag = False) -> None:
    """Show an issue with its comments and attachments."""
    view = run(lambda ctx: show_issue(ctx, key))
    emit(view, as_json, lambda: _issue_text(view))


@app.command("comment")
def issue_comment(
    key: str,
    body: Annotated[str, typer.Option("--body", help="The comment's text.")],
    author: Annotated[
        str | None, typer.Option("--author", help="Author's address; default: the local admin.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Comment on an issue (without --author: an agent's comment by the local admin)."""
    view = run(lambda ctx: comment_as_agent(ctx, key, body, author))
    emit(view, as_json, lambda: _issue_text(view))


@app.command("close")
def issue_close(key: str, as_json: JsonFlag = False) -> None:
    """Close an issue (the reporter and watchers are told)."""
    view = run(lambda ctx: set_status(ctx, key, IssueStatus.CLOSED))
    emit(view, as_json, lambda: _issue_text(view))


@app.command("reopen")
def issue_reopen(key: str, as_json: JsonFlag = False) -> None:
    """Reopen an issue (the reporter and watchers are told)."""
    view = run(lambda ctx: set_status(ctx, key, IssueStatus.OPEN))
    emit(view, as_json, lambda: _issue_text(view))

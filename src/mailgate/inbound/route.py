"""Routing: what a parsed message becomes. Pure: the database lookups are done by the caller and
passed in as a `Match`; this module only decides (handlers modelled on Jira's mail handlers)."""

from __future__ import annotations

import re
from dataclasses import dataclass

HANDLERS = ("create-or-comment", "create", "comment")
BULK_ACTIONS = ("ignore", "accept", "delete", "forward:ADDRESS")


@dataclass(frozen=True)
class RouteOptions:
    handler: str = "create-or-comment"
    # What automated mail (auto-replies, bounces, lists, bulk) does: ignore (left on the server
    # like any message: the mailbox's post-action), accept (handled like a person's), delete, or
    # forward:ADDRESS (sent on to someone, then the mailbox's post-action).
    bulk: str = "ignore"
    comments_from_participants_only: bool = False
    create_customers: bool = True
    cc_watchers: bool = True
    catch_address: str | None = None
    whole_body: bool = False
    split_regex: str | None = None
    quarantine_dmarc_fail: bool = False
    # A flood of person-like mail from one sender (no automation headers) is quarantined.
    max_per_sender_hour: int = 30
    # Attachments over these sizes are not kept (the issue or comment says which).
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments_bytes: int = 25 * 1024 * 1024  # all of one message's together


@dataclass(frozen=True)
class Match:
    """What the caller found in the database for this message."""

    issue_id: int | None  # by an issue key in the subject, else by In-Reply-To / References
    sender_is_participant: bool = False
    duplicate_of: int | None = None  # an issue already made from this Message-ID
    sender_last_hour: int = 0  # messages from this sender taken in the last hour


@dataclass(frozen=True)
class Create:
    pass


@dataclass(frozen=True)
class AddComment:
    issue_id: int


@dataclass(frozen=True)
class Ignore:
    reason: str
    delete: bool = False  # deleted from the server instead of the mailbox's post-action
    forward_to: str | None = None  # sent on to this address


@dataclass(frozen=True)
class Quarantine:
    reason: str


@dataclass(frozen=True)
class Duplicate:
    issue_id: int


Decision = Create | AddComment | Ignore | Quarantine | Duplicate


def decide(
    *,
    automated: str | None,
    recipients: list[str],
    options: RouteOptions,
    match: Match,
    dmarc: str | None = None,
) -> Decision:
    """The handler's decision for one message."""
    if automated == "own":
        return Ignore("our own notification came back (it carries mailgate's fingerprint)")
    if automated is not None and options.bulk != "accept":
        forward_to = options.bulk[8:] if options.bulk.startswith("forward:") else None
        return Ignore(
            f"automated mail ({automated}) does not create issues or comments"
            + (f"; forwarded to {forward_to}" if forward_to else ""),
            delete=options.bulk == "delete",
            forward_to=forward_to,
        )
    if options.catch_address and options.catch_address.lower() not in recipients:
        return Ignore(f"not addressed to {options.catch_address}")
    if match.duplicate_of is not None:
        return Duplicate(match.duplicate_of)
    if options.quarantine_dmarc_fail and dmarc == "fail":
        return Quarantine(
            "the receiving server says DMARC failed for the sender's domain (a spoofed sender?); "
            "retry it if it is genuine"
        )
    if options.max_per_sender_hour and match.sender_last_hour >= options.max_per_sender_hour:
        return Quarantine(
            f"the sender sent more than {options.max_per_sender_hour} messages in the last hour "
            "(a flood without automation headers); retry the ones that are genuine"
        )
    if options.handler == "create":
        return Create()
    if match.issue_id is not None:
        if options.comments_from_participants_only and not match.sender_is_participant:
            return Create()
        return AddComment(match.issue_id)
    if options.handler == "comment":
        return Quarantine(
            "no issue matches this message (no issue key in the subject, no reply to a known "
            "message) and the mailbox's handler only adds comments"
        )
    return Create()


def comment_body(reply_text: str, body_text: str, options: RouteOptions) -> str:
    """The comment's text: the reply without quoted history (or the whole body), cut at the
    split pattern when one is set."""
    text = body_text if options.whole_body or not reply_text.strip() else reply_text
    if options.split_regex:
        parts = re.split(options.split_regex, text, maxsplit=1, flags=re.MULTILINE)
        text = parts[0]
    return text.strip()

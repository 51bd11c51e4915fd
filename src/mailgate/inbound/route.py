"""Routing: what a parsed message becomes. Pure: the database lookups are done by the caller and
passed in as a `Match`; this module only decides (handlers modelled on Jira's mail handlers).

What a stranger can make the desk do is bounded here (a mailbox is an open door: anyone can
write to it):
- watchers taken from one message's Cc are capped (`max_cc_watchers`), and an address that is
  not a mailbox of its own (no domain) is never one;
- an issue key in the subject names an issue of the mailbox's own project only, unless the
  admin allows others (`keys_of_other_projects`): a key of another project is then just text;
- mail about an issue from someone who is not its reporter or a watcher starts a new issue, or
  is held for an agent (`non_participants`); it is a comment only when the admin says so;
- more than `max_comments_per_issue_hour` comments from one sender on one issue within an hour
  are held (the signature of two auto-responders answering each other through the desk).
Held mail is quarantined with the reason and notifies nobody until an agent accepts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from mailgate.store.vocabulary import BulkAction, Handler, NonParticipants

HANDLERS: Final = tuple(Handler)
BULK_ACTIONS: Final = (
    BulkAction.IGNORE,
    BulkAction.ACCEPT,
    BulkAction.DELETE,
    f"{BulkAction.FORWARD}:ADDRESS",
)
NON_PARTICIPANTS: Final = tuple(NonParticipants)
_FORWARD = f"{BulkAction.FORWARD}:"


@dataclass(frozen=True)
class RouteOptions:
    handler: Handler = Handler.CREATE_OR_COMMENT
    # What automated mail (auto-replies, bounces, lists, bulk) does: ignore (left on the server
    # like any message: the mailbox's post-action), accept (handled like a person's), delete, or
    # forward:ADDRESS (sent on to someone, then the mailbox's post-action).
    bulk: str = BulkAction.IGNORE  # a `BulkAction`, or forward:ADDRESS
    # Mail about an issue from someone who is neither its reporter nor a watcher (nor an
    # agent): a new issue (Jira Service Management's rule), held for an agent, or a comment.
    non_participants: NonParticipants = NonParticipants.NEW_ISSUE
    create_customers: bool = True
    cc_watchers: bool = True
    # At most this many Cc'd addresses of one message become watchers (0: none): 500 addresses
    # in Cc must not make 500 recipients of every later comment.
    max_cc_watchers: int = 10
    # An issue key of another project in the subject comments there (else it is just text).
    keys_of_other_projects: bool = False
    catch_address: str | None = None
    whole_body: bool = False
    split_regex: str | None = None
    quarantine_dmarc_fail: bool = False
    # A flood of person-like mail from one sender (no automation headers) is quarantined.
    max_per_sender_hour: int = 30
    # More comments than this from one sender on one issue within an hour are held (0: off):
    # a naive auto-responder answering each notification would otherwise never stop.
    max_comments_per_issue_hour: int = 5
    # Attachments over these sizes are not kept (the issue or comment says which).
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments_bytes: int = 25 * 1024 * 1024  # all of one message's together

    def __post_init__(self) -> None:
        # Options read back from the database (JSON) hold plain strings.
        object.__setattr__(self, "non_participants", NonParticipants(self.non_participants))


@dataclass(frozen=True)
class Match:
    """What the caller found in the database for this message."""

    issue_id: int | None  # by an issue key in the subject, else by In-Reply-To / References
    sender_is_participant: bool = False
    duplicate_of: int | None = None  # an issue already made from this Message-ID
    sender_last_hour: int = 0  # messages from this sender taken in the last hour
    issue_key: str | None = None  # the key of `issue_id`, for the reasons an agent reads
    sender_comments_last_hour: int = 0  # comments from this sender on `issue_id` lately


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
    # Held for an agent: the issue it would have commented on (`quarantine retry --as-comment`).
    issue_id: int | None = None


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
    sender_problem: str | None = None,
) -> Decision:
    """The handler's decision for one message. `sender_problem` says why the From header gives
    no usable address (None when it does)."""
    if automated == "own":
        return Ignore("our own notification came back (it carries mailgate's fingerprint)")
    if automated is not None and options.bulk != BulkAction.ACCEPT:
        forward_to = options.bulk[len(_FORWARD) :] if options.bulk.startswith(_FORWARD) else None
        return Ignore(
            f"automated mail ({automated}) does not create issues or comments"
            + (f"; forwarded to {forward_to}" if forward_to else ""),
            delete=options.bulk == BulkAction.DELETE,
            forward_to=forward_to,
        )
    if options.catch_address and options.catch_address.lower() not in recipients:
        return Ignore(f"not addressed to {options.catch_address}")
    if match.duplicate_of is not None:
        return Duplicate(match.duplicate_of)
    if sender_problem is not None:
        # Never the project's default reporter: that one stands for *unknown* senders with an
        # address, not for mail nobody can be answered about (or held responsible for).
        return Quarantine(
            f"{sender_problem}: there is nobody to file it under or to answer, so it is held "
            "for an agent (nobody was notified)"
        )
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
    if options.handler == Handler.CREATE:
        return Create()
    if match.issue_id is not None:
        return _about_an_issue(options, match)
    if options.handler == Handler.COMMENT:
        return Quarantine(
            "no issue matches this message (no issue key in the subject, no reply to a known "
            "message) and the mailbox's handler only adds comments"
        )
    return Create()


def _about_an_issue(options: RouteOptions, match: Match) -> Decision:
    """A message that names a known issue: a comment, unless its sender may not comment."""
    assert match.issue_id is not None
    key = match.issue_key or "the issue"
    accept = f"`mailgate quarantine retry ID --as-comment` adds it to {key}"
    if not match.sender_is_participant and options.non_participants != NonParticipants.COMMENT:
        new_issue = options.non_participants == NonParticipants.NEW_ISSUE
        if new_issue and options.handler != Handler.COMMENT:
            return Create()
        return Quarantine(
            f"the sender is not the reporter or a watcher of {key}: held for an agent "
            f"(nobody was notified); {accept}",
            issue_id=match.issue_id,
        )
    limit = options.max_comments_per_issue_hour
    if limit and match.sender_comments_last_hour >= limit:
        return Quarantine(
            f"the sender already commented {limit} times on {key} within the hour (two "
            f"auto-responders answering each other?): held for an agent (nobody was notified); "
            f"{accept}",
            issue_id=match.issue_id,
        )
    return AddComment(match.issue_id)


def keys_to_follow(issue_keys: Iterable[str], project_key: str, options: RouteOptions) -> list[str]:
    """The subject's issue keys that may name the issue a message is about, in order: the
    mailbox's own project's only, unless the admin allows keys of other projects."""
    if options.keys_of_other_projects:
        return list(issue_keys)
    own = project_key + "-"
    return [key for key in issue_keys if key.startswith(own) and key[len(own) :].isdigit()]


def cc_watchers(
    cc: Sequence[str],
    *,
    options: RouteOptions,
    never: Iterable[str],
    may_watch: Callable[[str], bool],
) -> tuple[list[str], list[str]]:
    """(the Cc'd addresses that become watchers, the ones left out by the cap), each once, in
    the header's order. `never` (the desk's own addresses, the sender) and addresses
    `may_watch` refuses (no person's mailbox) are neither."""
    excluded = {address.lower() for address in never}
    candidates = [
        address
        for address in dict.fromkeys(a.lower() for a in cc)
        if address not in excluded and may_watch(address)
    ]
    limit = options.max_cc_watchers if options.cc_watchers else 0
    return candidates[:limit], candidates[limit:]


def left_out_note(left_out: Sequence[str], options: RouteOptions, shown: int = 10) -> str | None:
    """The line an agent reads in the issue about Cc'd addresses that are no watchers."""
    if not left_out:
        return None
    names = ", ".join(left_out[:shown]) + (", …" if len(left_out) > shown else "")
    limit = options.max_cc_watchers if options.cc_watchers else 0
    if limit:
        return (
            f"[{len(left_out)} more Cc'd addresses were not added as watchers (at most {limit} "
            f"from one message): {names}]"
        )
    return f"[{len(left_out)} Cc'd addresses were not added as watchers (off here): {names}]"


def comment_body(reply_text: str, body_text: str, options: RouteOptions) -> str:
    """The comment's text: the reply without quoted history (or the whole body), cut at the
    split pattern when one is set."""
    text = body_text if options.whole_body or not reply_text.strip() else reply_text
    if options.split_regex:
        parts = re.split(options.split_regex, text, maxsplit=1, flags=re.MULTILINE)
        text = parts[0]
    return text.strip()

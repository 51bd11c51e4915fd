"""The incoming mail server form: its fields read into the `MailboxOptions` that `mailbox add`
and `mailbox set` build from their options (the same service functions check them, with the
same sentences), and a stored mailbox put back into the form for editing.

The handler options are sent to the service only when they differ from what the mailbox has
now (or, for a new one, from the handler's defaults), so a mailbox keeps the defaults it never
changed and the audit log names only what the admin changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from mailgate.inbound.mailboxes import MailboxOptions
from mailgate.inbound.route import RouteOptions
from mailgate.store.vocabulary import (
    Backlog,
    BulkAction,
    Handler,
    NonParticipants,
    PostAction,
    Protocol,
)
from mailgate.web.pages.mail_form import checked, endpoint_form, endpoint_from, given, number

PROTOCOL_LABELS = {Protocol.IMAP: "IMAP", Protocol.POP3: "POP3"}
HANDLER_LABELS = {
    Handler.CREATE_OR_COMMENT: "Create a new issue or add a comment to an existing issue",
    Handler.CREATE: "Create a new issue from each message",
    Handler.COMMENT: "Add a comment to an existing issue only (others are quarantined)",
}
AFTER_LABELS = {
    PostAction.SEEN: "Mark it as read",
    PostAction.DELETE: "Delete it",
    PostAction.MOVE: "Move it to a folder",
}
BACKLOG_LABELS = {
    Backlog.UNSEEN: "Take the unread messages",
    Backlog.ALL: "Take every message",
    Backlog.NONE: "Take none: only mail that arrives from now on",
}
BULK_LABELS = {
    BulkAction.IGNORE: "Ignore it (the post-action still applies)",
    BulkAction.ACCEPT: "Handle it like a person's mail",
    BulkAction.DELETE: "Delete it",
    BulkAction.FORWARD: "Forward it to an address",
}
NON_PARTICIPANT_LABELS = {
    NonParticipants.NEW_ISSUE: "Create a new issue",
    NonParticipants.HOLD: "Hold it in quarantine for an agent",
    NonParticipants.COMMENT: "Add it as a comment",
}
# The handler's switches and numbers, as `mailbox add` names them.
ROUTE_SWITCHES = (
    "create_customers",
    "cc_watchers",
    "keys_of_other_projects",
    "whole_body",
    "quarantine_dmarc_fail",
)
ROUTE_NUMBERS = {
    "max_cc_watchers": "Cc'd watchers at most",
    "max_per_sender_hour": "Messages per sender and hour",
    "max_comments_per_issue_hour": "Comments per issue and hour",
    "max_attachment_bytes": "Largest attachment kept",
    "max_attachments_bytes": "All attachments of a message",
}
_DEFAULT_ROUTE = {
    name: value for name, value in asdict(RouteOptions()).items() if name != "handler"
}


def blank_form() -> dict[str, Any]:
    """A new mailbox's form: the defaults `mailbox add` uses."""
    return {
        "name": "",
        "protocol": Protocol.IMAP,
        "host": "",
        "port": "",
        "security": "ssl",
        "username": "",
        "auth": "oauth2",
        "credential": "",
        "folder": "INBOX",
        "ca_file": "",
        "sasl": "auto",
        "project": "",
        "handler": Handler.CREATE_OR_COMMENT,
        "after": PostAction.SEEN,
        "move_folder": "",
        "poll": "60",
        "idle": True,
        "backlog": Backlog.UNSEEN,
        "max_message_bytes": "",
        **_route_form(_DEFAULT_ROUTE),
    }


def stored_form(view: Mapping[str, Any]) -> dict[str, Any]:
    """A stored mailbox (`mailbox_view`) as its edit form shows it."""
    after = str(view["after"])
    moved = after.startswith(f"{PostAction.MOVE}:")
    return {
        "name": view["name"],
        "protocol": view["protocol"],
        **endpoint_form(view),
        "folder": view["folder"],
        "project": view["project"],
        "handler": view["handler"],
        "after": PostAction.MOVE if moved else after,
        "move_folder": after.split(":", 1)[1] if moved else "",
        "poll": str(view["poll_seconds"]),
        "idle": view["idle"],
        "backlog": view["backlog"],
        "max_message_bytes": str(view["max_message_bytes"]),
        **_route_form(effective_route(view)),
    }


def effective_route(view: Mapping[str, Any]) -> dict[str, Any]:
    """The handler options a mailbox works with: its own, else the defaults."""
    return {**_DEFAULT_ROUTE, **dict(view["route_options"])}


def _route_form(route: Mapping[str, Any]) -> dict[str, Any]:
    bulk = str(route["bulk"])
    forward = bulk.startswith(f"{BulkAction.FORWARD}:")
    return {
        "bulk": BulkAction.FORWARD if forward else bulk,
        "bulk_forward": bulk.split(":", 1)[1] if forward else "",
        "non_participants": str(route["non_participants"]),
        "catch_address": route["catch_address"] or "",
        "split_regex": route["split_regex"] or "",
        **{name: bool(route[name]) for name in ROUTE_SWITCHES},
        **{name: str(route[name]) for name in ROUTE_NUMBERS},
    }


def options_from(form: Mapping[str, str], stored: Mapping[str, Any] | None) -> MailboxOptions:
    """The options of a submitted form; `stored` is the mailbox's view when it is edited.

    What only the form can get wrong (a number that is no number, no credential chosen) is
    said here; everything else the service function checks, as it does for `mailbox add`."""
    endpoint = endpoint_from(form, stored["auth"] if stored else None)
    after = given(form, "after")
    if after == PostAction.MOVE:
        after = f"{PostAction.MOVE}:{form.get('move_folder', '').strip()}"
    return MailboxOptions(
        protocol=None if stored else given(form, "protocol"),
        **endpoint,
        folder=form.get("folder", "") if stored else given(form, "folder"),
        project=given(form, "project"),
        handler=given(form, "handler"),
        after=after,
        poll_seconds=number(form, "poll", "The poll interval"),
        idle=checked(form, "idle"),
        backlog=given(form, "backlog"),
        max_message_bytes=number(form, "max_message_bytes", "The size limit"),
        route=_route_changes(form, effective_route(stored) if stored else _DEFAULT_ROUTE),
    )


def _route_changes(form: Mapping[str, str], current: Mapping[str, Any]) -> dict[str, Any]:
    """The handler options the form sets to something else than `current`."""
    bulk = form.get("bulk", str(current["bulk"]))
    if bulk == BulkAction.FORWARD:
        bulk = f"{BulkAction.FORWARD}:{form.get('bulk_forward', '').strip()}"
    typed: dict[str, Any] = {
        "bulk": bulk,
        "non_participants": form.get("non_participants", str(current["non_participants"])),
        "catch_address": given(form, "catch_address"),
        "split_regex": form.get("split_regex", "") or None,
        **{name: checked(form, name) for name in ROUTE_SWITCHES},
    }
    for name, label in ROUTE_NUMBERS.items():
        value = number(form, name, label)
        if value is not None:
            typed[name] = value
    changes = {name: value for name, value in typed.items() if value != current[name]}
    if changes.get("catch_address", "") is None:
        changes["catch_address"] = ""  # emptied: the service clears it
    if changes.get("split_regex", "") is None:
        changes["split_regex"] = ""
    return changes

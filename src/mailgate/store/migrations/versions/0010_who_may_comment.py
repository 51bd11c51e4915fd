"""who may comment: a mailbox's `comments_from_participants_only` (True or False) becomes
`non_participants` (new-issue or comment), so that one option says what mail about an issue
from someone who is not its reporter or a watcher does (new-issue, hold or comment). A mailbox
that never chose gets the new default, new-issue (before, anyone's reply was a comment).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_MAILBOXES = sa.table("mailboxes", sa.column("id", sa.Integer), sa.column("route_options", sa.JSON))
# Options the older handler does not know: a downgraded mailbox must still load its options.
_NEWER = (
    "non_participants",
    "max_cc_watchers",
    "keys_of_other_projects",
    "max_comments_per_issue_hour",
)


def _rewrite(change: Any) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(_MAILBOXES.c.id, _MAILBOXES.c.route_options)).all()
    for mailbox_id, options in rows:
        changed = change(dict(options or {}))
        if changed is not None:
            connection.execute(
                _MAILBOXES.update()
                .where(_MAILBOXES.c.id == mailbox_id)
                .values(route_options=changed)
            )


def _upgraded(options: dict[str, Any]) -> dict[str, Any] | None:
    if "comments_from_participants_only" not in options:
        return None
    participants_only = bool(options.pop("comments_from_participants_only"))
    options["non_participants"] = "new-issue" if participants_only else "comment"
    return options


def _downgraded(options: dict[str, Any]) -> dict[str, Any] | None:
    if not any(name in options for name in _NEWER):
        return None
    who = options.get("non_participants")
    for name in _NEWER:
        options.pop(name, None)
    if who is not None:
        # "hold" did not exist: the closest older rule keeps strangers from commenting.
        options["comments_from_participants_only"] = who != "comment"
    return options


def upgrade() -> None:
    _rewrite(_upgraded)


def downgrade() -> None:
    _rewrite(_downgraded)

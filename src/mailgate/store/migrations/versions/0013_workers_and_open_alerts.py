"""Many workers sharing one database: the workers table (each process that reads mailboxes,
with its heartbeat on the database's clock), who held each mailbox's lease last (a claim by
another worker is a lease move), and at most one open alert per incident.

Open alerts found twice for one incident (two workers that noticed it at once) are resolved but
the newest before the unique index is made.

PostgreSQL: each project gets a sequence of issue numbers, `issue_numbers_ID`, starting at its
`next_number` (`tracker/service.py` takes numbers from it without locking the project row; a
project made later gets its own when it is added).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_OPEN = "resolved_at IS NULL"
_PROJECTS = "SELECT id, next_number FROM projects"


def _sequence(project_id: int) -> str:
    return f"issue_numbers_{int(project_id)}"  # as `tracker.service.number_sequence` names it


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"])
    op.add_column("mailboxes", sa.Column("last_lease_owner", sa.String(200)))
    op.execute(
        "UPDATE alerts SET resolved_at = opened_at WHERE resolved_at IS NULL AND id NOT IN "
        "(SELECT max(id) FROM alerts WHERE resolved_at IS NULL GROUP BY key)"
    )
    op.create_index(
        "uq_alerts_open_key",
        "alerts",
        ["key"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for project_id, next_number in bind.execute(sa.text(_PROJECTS)).all():
            op.execute(f"CREATE SEQUENCE {_sequence(project_id)} START WITH {int(next_number)}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for project_id, _next in bind.execute(sa.text(_PROJECTS)).all():
            sequence = _sequence(project_id)
            number = bind.execute(
                sa.text("SELECT nextval(to_regclass(:sequence))"), {"sequence": sequence}
            ).scalar()
            if number is not None:
                bind.execute(
                    sa.text("UPDATE projects SET next_number = :number WHERE id = :id"),
                    {"number": number, "id": project_id},
                )
            op.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
    op.drop_index("uq_alerts_open_key", "alerts")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("last_lease_owner")
    op.drop_index("ix_workers_heartbeat_at", "workers")
    op.drop_table("workers")

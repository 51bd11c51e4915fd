"""sender trust and route options

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("route_options", sa.JSON(), nullable=False, server_default="{}")
        )

    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender", sa.String(length=320), nullable=True))
        batch_op.create_index(batch_op.f("ix_receipts_sender"), ["sender"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receipts_sender"))
        batch_op.drop_column("sender")

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("route_options")

"""receipts for ingest

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("project", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("issue_id", sa.Integer(), nullable=True))
        batch_op.alter_column("mailbox_id", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.alter_column("mailbox_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("issue_id")
        batch_op.drop_column("project")
        batch_op.drop_column("origin")

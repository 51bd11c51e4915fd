"""receipt lookups: a message is recognised by its place, its Message-ID or its bytes without
scanning the mailbox's receipts

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        # Place (UID, UIDL) lookups use the unique constraints' indexes.
        batch_op.create_index("ix_receipts_message_id", ["mailbox_id", "message_id"])
        batch_op.create_index("ix_receipts_content", ["mailbox_id", "sha256"])
        # The per-sender flood count, answered from the index alone: the row holds the raw
        # message before received_at, and reading past it costs its overflow pages.
        batch_op.drop_index("ix_receipts_sender")
        batch_op.create_index("ix_receipts_sender", ["sender", "project", "status", "received_at"])


def downgrade() -> None:
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_receipts_sender")
        batch_op.create_index("ix_receipts_sender", ["sender"])
        batch_op.drop_index("ix_receipts_content")
        batch_op.drop_index("ix_receipts_message_id")

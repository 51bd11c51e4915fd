"""receipt lookups (a message is recognised by its place, its Message-ID or its bytes without
scanning the mailbox's receipts), a message's own post-action, and the raw message stored once
by its SHA-256 with the attachments (receipts stay small rows)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO blobs (sha256, size, data) SELECT sha256, size, raw FROM receipts r "
        "WHERE raw IS NOT NULL AND sha256 <> '' AND r.id = (SELECT min(id) FROM receipts x "
        "WHERE x.sha256 = r.sha256) AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = r.sha256)"
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_column("raw")
        batch_op.add_column(sa.Column("post_action", sa.String(length=20), nullable=True))
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
        batch_op.drop_column("post_action")
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE receipts SET raw = (SELECT data FROM blobs WHERE blobs.sha256 = receipts.sha256)"
    )

"""The desk and the API: issue assignees, full-text search, API tokens, idempotency keys,
webhooks and their deliveries.

Search: SQLite keeps two FTS5 tables up to date by triggers (so every write, the inbound
pipeline's included, indexes in its own transaction); PostgreSQL uses GIN indexes over the same
text, which it keeps itself.

Revision ID: 0012
Revises: 0011
"""

# ruff: noqa: S608 (the statements are built from this file's constants only)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TOKENIZER = "tokenize = 'unicode61 remove_diacritics 2'"
_REPORTER = "(SELECT email || ' ' || coalesce(name, '') FROM people WHERE id = new.reporter_id)"
_SQLITE_SEARCH = [
    f"CREATE VIRTUAL TABLE issues_fts USING fts5(summary, description, reporter, {_TOKENIZER})",
    "CREATE VIRTUAL TABLE comments_fts USING fts5(body, content = 'comments', "
    f"content_rowid = 'id', {_TOKENIZER})",
    "CREATE TRIGGER issues_fts_insert AFTER INSERT ON issues BEGIN "
    "INSERT INTO issues_fts (rowid, summary, description, reporter) "
    f"VALUES (new.id, new.summary, new.description, {_REPORTER}); END",
    "CREATE TRIGGER issues_fts_update AFTER UPDATE OF summary, description, reporter_id "
    "ON issues BEGIN DELETE FROM issues_fts WHERE rowid = old.id; "
    "INSERT INTO issues_fts (rowid, summary, description, reporter) "
    f"VALUES (new.id, new.summary, new.description, {_REPORTER}); END",
    "CREATE TRIGGER issues_fts_delete AFTER DELETE ON issues BEGIN "
    "DELETE FROM issues_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN "
    "INSERT INTO comments_fts (rowid, body) VALUES (new.id, new.body); END",
    "CREATE TRIGGER comments_fts_update AFTER UPDATE OF body ON comments BEGIN "
    "INSERT INTO comments_fts (comments_fts, rowid, body) VALUES ('delete', old.id, old.body); "
    "INSERT INTO comments_fts (rowid, body) VALUES (new.id, new.body); END",
    "CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments BEGIN "
    "INSERT INTO comments_fts (comments_fts, rowid, body) VALUES ('delete', old.id, old.body); "
    "END",
    # What is there already.
    "INSERT INTO issues_fts (rowid, summary, description, reporter) "
    "SELECT issues.id, summary, description, email || ' ' || coalesce(name, '') "
    "FROM issues JOIN people ON people.id = issues.reporter_id",
    "INSERT INTO comments_fts (comments_fts) VALUES ('rebuild')",
]
_SQLITE_SEARCH_DROP = [
    "DROP TRIGGER IF EXISTS comments_fts_delete",
    "DROP TRIGGER IF EXISTS comments_fts_update",
    "DROP TRIGGER IF EXISTS comments_fts_insert",
    "DROP TRIGGER IF EXISTS issues_fts_delete",
    "DROP TRIGGER IF EXISTS issues_fts_update",
    "DROP TRIGGER IF EXISTS issues_fts_insert",
    "DROP TABLE IF EXISTS comments_fts",
    "DROP TABLE IF EXISTS issues_fts",
]
# The same expressions as `tracker.search` queries, so PostgreSQL uses these indexes.
_POSTGRES_SEARCH = [
    "CREATE INDEX ix_issues_search ON issues USING gin "
    "(to_tsvector('simple', summary || ' ' || description))",
    "CREATE INDEX ix_comments_search ON comments USING gin (to_tsvector('simple', body))",
]
_POSTGRES_SEARCH_DROP = [
    "DROP INDEX IF EXISTS ix_comments_search",
    "DROP INDEX IF EXISTS ix_issues_search",
]


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column(
                "assignee_id",
                sa.Integer,
                sa.ForeignKey("users.id", name="fk_issues_assignee", ondelete="SET NULL"),
            )
        )
    # The desk's list: newest activity first, filtered by project, status, reporter, assignee.
    op.create_index("ix_issues_updated", "issues", ["updated_at", "id"])
    op.create_index("ix_issues_project_updated", "issues", ["project_id", "updated_at", "id"])
    op.create_index("ix_issues_status_updated", "issues", ["status", "updated_at", "id"])
    op.create_index("ix_issues_reporter", "issues", ["reporter_id"])
    op.create_index("ix_issues_assignee", "issues", ["assignee_id"])
    op.create_index("ix_attachments_comment", "attachments", ["comment_id"])
    op.create_index("ix_receipts_status", "receipts", ["status", "id"])
    op.create_index("ix_audit_events_id_at", "audit_events", ["at", "id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(20), nullable=False),  # the token's first characters
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_address", sa.String(64)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),  # method, path and body
        sa.Column("status_code", sa.Integer),  # None while the first request is being answered
        sa.Column("response", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_key"),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("delivery_id", sa.String(40), nullable=False, unique=True),
        sa.Column(
            "webhook_id",
            sa.Integer,
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("response_status", sa.Integer),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    for statement in _SQLITE_SEARCH if _dialect() == "sqlite" else _POSTGRES_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    for statement in _SQLITE_SEARCH_DROP if _dialect() == "sqlite" else _POSTGRES_SEARCH_DROP:
        op.execute(statement)
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    for table in ("webhook_deliveries", "webhooks", "idempotency_keys", "api_tokens"):
        op.drop_table(table)
    for name, table in (
        ("ix_audit_events_id_at", "audit_events"),
        ("ix_receipts_status", "receipts"),
        ("ix_attachments_comment", "attachments"),
        ("ix_issues_assignee", "issues"),
        ("ix_issues_reporter", "issues"),
        ("ix_issues_status_updated", "issues"),
        ("ix_issues_project_updated", "issues"),
        ("ix_issues_updated", "issues"),
    ):
        op.drop_index(name, table)
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("assignee_id")


def _dialect() -> str:
    return str(op.get_bind().dialect.name)

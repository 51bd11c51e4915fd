"""The tables. Secrets live only in `*_enc` columns, encrypted by `store.secretbox`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Re-exported: the tables' base and timestamp type live in `store.base`.
from mailgate.store.base import Base as Base
from mailgate.store.base import UTCDateTime as UTCDateTime
from mailgate.store.base import utcnow as utcnow
from mailgate.store.vocabulary import (
    CredentialStatus,
    IssueStatus,
    MailboxStatus,
    PersonKind,
    SignInStatus,
    SmtpStatus,
)


class Integration(Base):
    """An OAuth 2.0 client registered at a provider."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_enc: Mapped[str | None] = mapped_column(Text)
    client_secret_expires: Mapped[date | None] = mapped_column(Date)
    tenant: Mapped[str | None] = mapped_column(String(200))
    cloud: Mapped[str | None] = mapped_column(String(20))
    account_type: Mapped[str | None] = mapped_column(String(20))
    # The login host's base URL when it is not the cloud's default (an emulator, a proxy).
    authority: Mapped[str | None] = mapped_column(Text)
    uses: Mapped[list[str]] = mapped_column(default=list)
    discovery_url: Mapped[str | None] = mapped_column(Text)
    issuer: Mapped[str | None] = mapped_column(Text)
    authorization_endpoint: Mapped[str | None] = mapped_column(Text)
    token_endpoint: Mapped[str] = mapped_column(Text)
    device_authorization_endpoint: Mapped[str | None] = mapped_column(Text)
    revocation_endpoint: Mapped[str | None] = mapped_column(Text)
    userinfo_endpoint: Mapped[str | None] = mapped_column(Text)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    app_scopes: Mapped[list[str]] = mapped_column(default=list)
    auth_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token_auth: Mapped[str] = mapped_column(String(40))
    # Set when the provider refused the client itself (expired or wrong secret): every
    # credential under it fails until the admin gives a new secret with `integration set`.
    client_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    credentials: Mapped[list[Credential]] = relationship(
        back_populates="integration", lazy="raise", cascade="all, delete-orphan"
    )


class Credential(Base):
    """One authorized account (or the app itself) under an integration: its token set."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("integration_id", "account", name="uq_credential_account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    account: Mapped[str] = mapped_column(String(320))
    grant_type: Mapped[str] = mapped_column(String(40))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column()
    refresh_token_issued_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(40), default=CredentialStatus.ACTIVE)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_refresh_at: Mapped[datetime | None] = mapped_column()
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # The refresh lease: one process at a time refreshes a credential (single flight
    # across processes and hosts), claimed with a conditional UPDATE.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    integration: Mapped[Integration] = relationship(back_populates="credentials", lazy="raise")


class CredentialEvent(Base):
    """A credential's history: authorized, refreshed, failed, revoked ..."""

    __tablename__ = "credential_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credential_id: Mapped[int] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)


class AuthorizationRequest(Base):
    """A sign-in in progress (authorization code with PKCE): the `state` and what it binds.

    Only hashes of the start token, the state and the browser binding are stored; the PKCE
    verifier is encrypted. A request is single-use and expires after ten minutes.
    """

    __tablename__ = "authorization_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    start_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    binding_hash: Mapped[str | None] = mapped_column(String(64))
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str] = mapped_column(String(100))
    redirect_uri: Mapped[str] = mapped_column(Text)
    login_hint: Mapped[str | None] = mapped_column(String(320))
    prompt: Mapped[str | None] = mapped_column(String(40))
    started_by: Mapped[str | None] = mapped_column(String(400))  # who, for the audit log
    status: Mapped[str] = mapped_column(String(20), default=SignInStatus.PENDING)
    outcome: Mapped[str | None] = mapped_column(Text)
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class Mailbox(Base):
    """An incoming mail server: where mail is read, how, and what becomes of it."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    protocol: Mapped[str] = mapped_column(String(10))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(10))
    ca_file: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(320))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="RESTRICT"), index=True
    )
    password_enc: Mapped[str | None] = mapped_column(Text)
    sasl_mechanism: Mapped[str | None] = mapped_column(String(20))
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    project: Mapped[str] = mapped_column(String(50))
    handler: Mapped[str] = mapped_column(String(30))
    after: Mapped[str] = mapped_column(String(300))
    poll_seconds: Mapped[int] = mapped_column(Integer)
    idle: Mapped[bool] = mapped_column(default=True)
    backlog: Mapped[str] = mapped_column(String(10))
    max_message_bytes: Mapped[int] = mapped_column(Integer)
    # The handler's options (inbound.route.RouteOptions) that differ from the defaults.
    route_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(30), default=MailboxStatus.NEW)
    last_check_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    uidvalidity: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_uid: Mapped[int | None] = mapped_column(sa.BigInteger)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column()  # on the database's clock
    # Who held the lease last, kept when it is released: a claim by another worker is a move.
    last_lease_owner: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Receipt(Base):
    """The record that one message of one mailbox was taken: the basis of exactly-once.

    Written in the same transaction as what the message became (and the mailbox's UID state);
    the mailbox post-action (seen, delete, move) runs only after that commit and is marked done
    here, so a crash in between only repeats the post-action.
    """

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "uidvalidity", "uid", name="uq_receipt_uid"),
        UniqueConstraint("mailbox_id", "uidl", name="uq_receipt_uidl"),
        sa.Index("ix_receipts_message_id", "mailbox_id", "message_id"),
        sa.Index("ix_receipts_content", "mailbox_id", "sha256"),
        sa.Index("ix_receipts_sender", "sender", "project", "status", "received_at"),
        sa.Index("ix_receipts_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for messages brought in by `mailgate ingest` (their origin says from where).
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str | None] = mapped_column(Text)
    project: Mapped[str | None] = mapped_column(String(50))
    sender: Mapped[str | None] = mapped_column(String(320))
    issue_id: Mapped[int | None] = mapped_column(Integer)
    uidvalidity: Mapped[int | None] = mapped_column(sa.BigInteger)
    uid: Mapped[int | None] = mapped_column(sa.BigInteger)
    uidl: Mapped[str | None] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(Text)
    # The raw message is the blob with this SHA-256; "" when it was never fetched (too large).
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # a `vocabulary.ReceiptStatus`
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column()
    post_action_done_at: Mapped[datetime | None] = mapped_column()
    # The message's own post-action when it is not the mailbox's ("delete": automated mail of
    # a mailbox whose --bulk is delete).
    post_action: Mapped[str | None] = mapped_column(String(20))


class Person(Base):
    """Someone mail comes from or goes to: an agent (a user of mailgate) or a customer."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=PersonKind.CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    smtp: Mapped[str | None] = mapped_column(String(100))
    notify: Mapped[bool] = mapped_column(default=True)
    default_reporter: Mapped[str | None] = mapped_column(String(320))
    next_number: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (
        UniqueConstraint("project_id", "number", name="uq_issue_number"),
        # The desk's list: newest activity first, by project or status; search is by
        # full-text index (migration 0012), kept by the database in the writer's transaction.
        sa.Index("ix_issues_updated", "updated_at", "id"),
        sa.Index("ix_issues_project_updated", "project_id", "updated_at", "id"),
        sa.Index("ix_issues_status_updated", "status", "updated_at", "id"),
        sa.Index("ix_issues_reporter", "reporter_id"),
        sa.Index("ix_issues_assignee", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    reporter_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    status: Mapped[str] = mapped_column(String(20), default=IssueStatus.OPEN)
    source_message_id: Mapped[str | None] = mapped_column(Text)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipts.id", ondelete="SET NULL"))
    sender_authentication: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", name="fk_issues_assignee", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    body: Mapped[str] = mapped_column(Text)
    source_message_id: Mapped[str | None] = mapped_column(Text)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipts.id", ondelete="SET NULL"))
    sender_authentication: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Watcher(Base):
    __tablename__ = "watchers"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)


class Blob(Base):
    """Attachment content and raw messages, stored once by SHA-256 (no shared filesystem
    needed; the same message through two mailboxes is kept once)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (sa.Index("ix_attachments_comment", "comment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    inline: Mapped[bool] = mapped_column(default=False)
    content_id: Mapped[str | None] = mapped_column(Text)


class ThreadMessage(Base):
    """A Message-ID we received or sent for an issue: replies find their issue by it, and a
    message arriving twice (or through two mailboxes) in one project makes one issue."""

    __tablename__ = "thread_messages"
    __table_args__ = (UniqueConstraint("project_id", "message_id", name="uq_thread_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # a `vocabulary.Direction`


class SmtpServer(Base):
    """An outgoing mail server: where notifications are sent, as whom, and how it signs in."""

    __tablename__ = "smtp_servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(10))
    ca_file: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(320))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="RESTRICT"), index=True
    )
    password_enc: Mapped[str | None] = mapped_column(Text)
    sasl_mechanism: Mapped[str | None] = mapped_column(String(20))
    from_address: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30), default=SmtpStatus.NEW)
    last_check_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxMessage(Base):
    """A message to send, durable until the SMTP server accepted it.

    Written in the same transaction as the event that causes it (an issue created, a comment), so
    a crash never loses one; `accepted_at` is set the moment the server's 250 arrives, so only a
    crash inside one SMTP transaction can send a message twice.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    smtp_server_id: Mapped[int | None] = mapped_column(
        ForeignKey("smtp_servers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))  # a `vocabulary.OutboxKind`
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    recipients: Mapped[list[str]] = mapped_column()
    message_id: Mapped[str] = mapped_column(String(998))
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    status: Mapped[str] = mapped_column(String(20), index=True)  # a `vocabulary.OutboxStatus`
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    accepted: Mapped[str | None] = mapped_column(Text)  # the server's reply to DATA
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column()


class Alert(Base):
    """An incident the admin was told about by mail: one message when it starts (at most one an
    hour while it lasts) and one when it ends."""

    __tablename__ = "alerts"
    # One open alert per incident, however many workers notice it at once.
    __table_args__ = (
        sa.Index(
            "uq_alerts_open_key",
            "key",
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)  # e.g. credential:3
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column()
    announced: Mapped[bool] = mapped_column(default=False)  # the admin was told it is open
    last_sent_at: Mapped[datetime | None] = mapped_column()  # the last message about it
    resolved_at: Mapped[datetime | None] = mapped_column()


class Worker(Base):
    """A process that reads mailboxes (`mailgate serve`, `mailgate worker`): alive while its
    heartbeat, on the database's clock, is recent; the mailboxes are shared among the live ones
    (`runtime/workers.py`)."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # the owner of its leases
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class User(Base):
    """Someone who signs in to the web UI. The password is an argon2id hash, never the password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower case
    role: Mapped[str] = mapped_column(String(20))  # a `vocabulary.Role`
    password_hash: Mapped[str | None] = mapped_column(Text)  # None until a password is set
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()
    password_changed_at: Mapped[datetime | None] = mapped_column()
    last_sign_in_at: Mapped[datetime | None] = mapped_column()


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database signs nobody in."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(64))
    flash: Mapped[str | None] = mapped_column(Text)  # one message shown on the next page


class SignInFailure(Base):
    """Failed sign-ins counted per account and per client address, to slow guessing."""

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # account:… or address:…
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column()
    blocked_until: Mapped[datetime | None] = mapped_column()


class UserLink(Base):
    """A one-time link that sets a password (a new user, a reset) or creates the first admin.
    Only the token's SHA-256 is stored."""

    __tablename__ = "user_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    purpose: Mapped[str] = mapped_column(String(20))  # a `vocabulary.LinkPurpose`
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class AuditEvent(Base):
    """Who did what and when: written by the service functions in the same transaction as the
    change. Never holds a secret's value."""

    __tablename__ = "audit_events"

    __table_args__ = (sa.Index("ix_audit_events_id_at", "at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(400))  # a user's email, `cli:LOGIN`, or `system`
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(60))  # e.g. integration.add, user.sign-in-failed
    subject: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[str | None] = mapped_column(Text)


class ApiToken(Base):
    """A user's key to the REST API, with that user's role. Only the token's SHA-256 is kept;
    `hint` (its first characters) tells tokens apart in a list."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    last_used_address: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()


class IdempotencyKey(Base):
    """A POST's `Idempotency-Key` and the answer it got: the same key again gets the same
    answer, and nothing is created twice."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the method, path and body
    status_code: Mapped[int | None] = mapped_column(Integer)  # None while being answered
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Webhook(Base):
    """A URL told of the desk's events, each delivery signed with the webhook's secret."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(default=list)  # `vocabulary.WebhookEvent`s
    secret_enc: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class WebhookDelivery(Base):
    """One event for one webhook, durable like the outbox: written in the event's
    transaction, retried with backoff until the receiver answers 2xx, dead after days.
    `delivery_id` is sent with every attempt, so a receiver can drop a repeat."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(40))  # a `vocabulary.WebhookEvent`
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as signed and sent
    status: Mapped[str] = mapped_column(String(20))  # a `vocabulary.DeliveryStatus`
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()

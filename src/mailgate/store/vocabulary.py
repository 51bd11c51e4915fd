"""The words mailgate stores: every status and kind, defined once.

Each is a `StrEnum`: a member is the very string the database holds and the JSON output shows
(`json.dumps(ReceiptStatus.CREATED)` is `"created"`), so a value read back as a plain string
compares equal to its member. Changing a value is a migration, not an edit.
"""

from __future__ import annotations

from enum import StrEnum


class ReceiptStatus(StrEnum):
    """What a received message became (`Receipt.status`)."""

    RECEIVED = "received"  # taken, with no handler (a mailbox's message being recorded)
    CREATED = "created"
    COMMENTED = "commented"
    IGNORED = "ignored"  # automated mail, or a message no rule takes
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"  # there before the mailbox was added (`--backlog none`)
    REFETCH = "refetch"  # a quarantined message to be fetched again at the next poll


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # given up on: `mailgate outbox retry` sends it again


class OutboxKind(StrEnum):
    """Why an outbox message was written."""

    ACKNOWLEDGEMENT = "acknowledgement"  # an issue was created
    COMMENT = "comment"
    STATUS = "status"
    FORWARD = "forward"  # automated mail sent on (`--bulk forward:ADDRESS`)
    ALERT = "alert"
    TEST = "test"  # `mailgate smtp test`


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    REFRESH_FAILING = "refresh-failing"
    NEEDS_REAUTHORIZATION = "needs-reauthorization"
    REVOKED = "revoked"


class MailboxStatus(StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    IDLE = "idle"
    POLLING = "polling"
    FAILING = "failing"
    AUTH_FAILED = "auth-failed"
    NEEDS_REAUTHORIZATION = "needs-reauthorization"


class SmtpStatus(StrEnum):
    NEW = "new"
    OK = "ok"
    FAILING = "failing"
    AUTH_FAILED = "auth-failed"
    NEEDS_REAUTHORIZATION = "needs-reauthorization"


class IssueStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class PersonKind(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"  # may answer any issue by mail


class Direction(StrEnum):
    """Of a Message-ID indexed for an issue (`ThreadMessage.direction`)."""

    IN = "in"  # a message we received
    OUT = "out"  # one of our notifications


class IncidentKind(StrEnum):
    """What an alert is about: the first part of its key (`credential:3`)."""

    CREDENTIAL = "credential"
    MAILBOX = "mailbox"
    SECRET = "secret"
    SMTP = "smtp"
    OUTBOX = "outbox"


class Protocol(StrEnum):
    """How a mailbox is read."""

    IMAP = "imap"
    POP3 = "pop3"


class Security(StrEnum):
    SSL = "ssl"  # TLS from the first byte
    STARTTLS = "starttls"
    NONE = "none"  # loopback hosts only


class AuthMethod(StrEnum):
    OAUTH2 = "oauth2"
    PASSWORD = "password"


class Backlog(StrEnum):
    """What a new mailbox does with the mail already there."""

    UNSEEN = "unseen"
    ALL = "all"
    NONE = "none"


class Handler(StrEnum):
    CREATE_OR_COMMENT = "create-or-comment"
    CREATE = "create"
    COMMENT = "comment"


class PostAction(StrEnum):
    """What is done to a message on the server once it is taken (`--after`); `move` is
    written `move:FOLDER`."""

    SEEN = "seen"
    DELETE = "delete"
    MOVE = "move"


class BulkAction(StrEnum):
    """What automated mail does (`--bulk`); `forward` is written `forward:ADDRESS`."""

    IGNORE = "ignore"
    ACCEPT = "accept"
    DELETE = "delete"
    FORWARD = "forward"


class NonParticipants(StrEnum):
    """Mail about an issue from someone who is neither its reporter, a watcher nor an agent."""

    NEW_ISSUE = "new-issue"
    HOLD = "hold"
    COMMENT = "comment"


class SignInStatus(StrEnum):
    """Where a sign-in (an authorization request) is (`AuthorizationRequest.status`)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class GrantType(StrEnum):
    """How a credential was obtained (`Credential.grant_type`; RFC 6749's names)."""

    AUTHORIZATION_CODE = "authorization_code"
    DEVICE_CODE = "device_code"  # RFC 8628 (its grant_type on the wire is a URN)
    CLIENT_CREDENTIALS = "client_credentials"


class CredentialEventKind(StrEnum):
    """What happened to a credential (`CredentialEvent.kind`)."""

    AUTHORIZED = "authorized"
    REAUTHORIZED = "reauthorized"
    RECOVERED = "recovered"  # a refresh worked again after failing
    REFRESH_FAILING = "refresh-failing"
    NEEDS_REAUTHORIZATION = "needs-reauthorization"
    REVOKED = "revoked"


class Role(StrEnum):
    """What a user of the web UI and the API may do (`User.role`)."""

    ADMIN = "admin"  # configuration: integrations, mailboxes, SMTP, projects, users
    AGENT = "agent"  # the desk: issues and quarantine


class LinkPurpose(StrEnum):
    """What a one-time link is for (`UserLink.purpose`)."""

    FIRST_ADMIN = "first-admin"  # printed by the first `serve`: creates the first admin
    SET_PASSWORD = "set-password"  # a new user, or a password reset


class WebhookEvent(StrEnum):
    """What a webhook may be told of (`Webhook.events`, `WebhookDelivery.event`)."""

    ISSUE_CREATED = "issue.created"
    COMMENT_ADDED = "comment.added"
    STATUS_CHANGED = "issue.status-changed"
    MESSAGE_QUARANTINED = "message.quarantined"
    CREDENTIAL_ATTENTION = "credential.needs-attention"


class DeliveryStatus(StrEnum):
    """Of a webhook delivery, as of an outbox message."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # given up on after days of failures: Retry sends it again

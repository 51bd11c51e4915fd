"""Notifications: what the tracker tells people by mail, written to the outbox in the same
transaction as the event that causes it (an issue created, a comment added, a status change).

Every message is threaded (our own Message-ID, recorded for the issue so that a reply finds it;
In-Reply-To/References continue the customer's thread), carries `Auto-Submitted` and our
fingerprint header (so it never opens an issue when it comes back), and never goes to the
person whose action caused it, to an automated sender or to one of our own addresses.
"""

from __future__ import annotations

import contextlib
import email.errors
import email.header
import email.utils
import functools
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP, Policy
from pathlib import Path
from typing import Any, Literal

import jinja2
import structlog
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from mailgate.mail.smtp_servers import is_address
from mailgate.store.models import (
    Issue,
    Mailbox,
    OutboxMessage,
    Person,
    Project,
    SmtpServer,
    ThreadMessage,
    Watcher,
)
from mailgate.store.vocabulary import Direction, OutboxKind, OutboxStatus
from mailgate.tracker import service
from mailgate.tracker.fingerprint import DEFAULT_FINGERPRINT_HEADER, FINGERPRINT
from mailgate.unit import Unit

log = structlog.get_logger(__name__)
OUTBOX = service.table_of(OutboxMessage)
_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Event:
    """What happened to an issue, and who made it happen (never notified of it)."""

    kind: Literal["created", "commented", "status"]
    issue_id: int
    actor: str | None  # the address of whoever caused it
    body: str = ""  # the comment's text, or the new status
    by_agent: bool = False


_OUTBOX_KIND: dict[str, OutboxKind] = {
    "created": OutboxKind.ACKNOWLEDGEMENT,
    "commented": OutboxKind.COMMENT,
    "status": OutboxKind.STATUS,
}


@functools.cache
def environment(templates: Path | None) -> jinja2.Environment:
    """Templates the admin may override: $MAILGATE_HOME/templates/NAME beats the built-in."""
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(_TEMPLATES)))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(templates: Path | None, name: str, values: dict[str, Any]) -> str:
    """A template, the admin's (from the folder `templates`) if it works: a broken one is
    logged and the built-in used (a typo in a template must not stop mail from becoming
    issues)."""
    try:
        return environment(templates).get_template(name).render(values)
    except jinja2.TemplateError as exc:
        if templates is None:
            raise
        log.error("template failed; using the built-in one", template=name, error=str(exc))
        return environment(None).get_template(name).render(values)


# Senders write "no reply" every way there is: noreply, no-reply, no_reply (Apple), no.reply,
# do_not_reply, "no reply" (quoted: RFC 5322 §3.4.1 allows a space there).
_AUTOMATED_LOCAL = re.compile(
    r"^(no[ ._-]?reply|do[ ._-]?not[ ._-]?reply|mailer[._-]?daemon|postmaster|bounces?"
    r"|notifications?)([+._-]|$)",
    re.IGNORECASE,
)


def looks_automated(address: str) -> bool:
    """An address no person reads (noreply@, mailer-daemon@ …): never notified, never a
    watcher."""
    return bool(_AUTOMATED_LOCAL.match(address.rsplit("@", 1)[0].strip('"')))


def may_receive(address: str) -> bool:
    """A person's mailbox we may write to: an address with a domain ("root" or "x@localhost"
    never is) that no machine reads. Whoever is not is never notified and never a watcher."""
    return is_address(address) and not looks_automated(address)


def smtp_for(unit: Unit, project: Project) -> SmtpServer | None:
    """The project's SMTP server (`project set --smtp`), else the only one there is."""
    cache = unit.smtp_servers
    if project.key not in cache:
        servers = list(unit.session.scalars(select(SmtpServer).order_by(SmtpServer.id)))
        named = [s for s in servers if s.name == project.smtp]
        cache[project.key] = named[0] if named else (servers[0] if len(servers) == 1 else None)
    return cache[project.key]


def wanted(unit: Unit, project: Project) -> bool:
    """Does this project send notifications at all? (Cheap: checked before composing any.)"""
    return project.notify and smtp_for(unit, project) is not None


def own_addresses(unit: Unit) -> set[str]:
    """Every address mailgate sends as or reads (a mailbox's login and the address it takes
    mail for, `--catch-address`): never a recipient (no mail to ourselves)."""
    if unit.own_addresses is None:
        session = unit.session
        found = {a.lower() for a in session.scalars(select(SmtpServer.from_address))}
        for username, options in session.execute(select(Mailbox.username, Mailbox.route_options)):
            found |= {a.lower() for a in (username, _catch_address(options)) if a and "@" in a}
        unit.own_addresses = found
    return unit.own_addresses


def _catch_address(route_options: dict[str, Any] | None) -> str | None:
    address = (route_options or {}).get("catch_address")
    return address if isinstance(address, str) else None


def _reply_to(session: Session, project: Project, smtp: SmtpServer) -> str:
    """Where a reply reaches the project's mailbox: the address it takes mail for when it has
    a catch address (a reply to its login would be ignored there), else its login."""
    mailbox = session.execute(
        select(Mailbox.username, Mailbox.route_options)
        .where(Mailbox.project == project.key)
        .order_by(Mailbox.id)
    ).first()
    if mailbox is None:
        return smtp.from_address
    username, options = mailbox
    address = _catch_address(options) or username
    return address if "@" in address else smtp.from_address


_WATCHER_ADDRESSES = (
    select(Person.email)
    .join(Watcher, Watcher.person_id == Person.id)
    .where(Watcher.issue_id == bindparam("issue"))
)
_THREAD = (
    select(ThreadMessage.message_id, ThreadMessage.direction)
    .where(ThreadMessage.issue_id == bindparam("issue"))
    .order_by(ThreadMessage.id)
)
# What the issue's earlier notifications were, and to whom (one recipient each).
_SENT_FOR_ISSUE = select(OutboxMessage.message_id, OutboxMessage.recipients).where(
    OutboxMessage.issue_id == bindparam("issue")
)


def notify(unit: Unit, event: Event) -> int:
    """Queue the event's notifications, one message per recipient addressed to them alone (a
    shared To would show every watcher's address to every other); returns how many were
    queued. Templates come from the unit's templates folder (MAILGATE_HOME/templates) when the
    admin changed them."""
    session = unit.session
    issue = session.get(Issue, event.issue_id)
    if issue is None:
        return 0
    project = session.get(Project, issue.project_id)
    if project is None or not project.notify:
        return 0
    smtp = smtp_for(unit, project)
    if smtp is None:
        return 0
    recipients = _recipients(unit, event, issue)
    if not recipients:
        return 0
    key = f"{project.key}-{issue.number}"
    thread = list(session.execute(_THREAD, {"issue": issue.id}).all())
    seen_by = _seen_by(session, issue.id)
    message = _compose(unit, event, project, issue, smtp, key)
    kind = _OUTBOX_KIND[event.kind]
    domain = smtp.from_address.rsplit("@", 1)[-1]
    for recipient in recipients:
        _address(message, recipient, thread, seen_by.get(recipient, set()))
        message.replace_header("Message-ID", email.utils.make_msgid(f"mailgate.{key}", domain))
        message_id = queue(unit, smtp.id, kind, issue.id, [recipient], message)
        # A reply to our message finds the issue by this Message-ID.
        service.remember_message(session, project.id, message_id, issue.id, Direction.OUT)
    return len(recipients)


def _recipients(unit: Unit, event: Event, issue: Issue) -> list[str]:
    """Who hears of the event: the reporter (and for a comment or a status change, the
    watchers), never whoever caused it, never our own addresses, never an address no person
    reads; each once."""
    session = unit.session
    reporter = session.get(Person, issue.reporter_id)
    assert reporter is not None
    everyone = [reporter.email]
    if event.kind != "created":
        everyone += session.execute(_WATCHER_ADDRESSES, {"issue": issue.id}).scalars()
    skip = own_addresses(unit) | {(event.actor or "").lower()}
    candidates = dict.fromkeys(address.lower() for address in everyone)
    return [address for address in candidates if address not in skip and may_receive(address)]


def _seen_by(session: Session, issue_id: int) -> dict[str, set[str]]:
    """The Message-IDs of the issue's notifications, by their recipient."""
    seen: dict[str, set[str]] = {}
    for message_id, recipients in session.execute(_SENT_FOR_ISSUE, {"issue": issue_id}):
        for recipient in recipients:
            seen.setdefault(str(recipient).lower(), set()).add(message_id)
    return seen


def _address(message: EmailMessage, recipient: str, thread: list[Any], seen: set[str]) -> None:
    """Address `message` to `recipient` alone, threaded on what they have: the customer's
    messages and the notifications sent to them (never the ids of the copies others got)."""
    message.replace_header("To", recipient)
    for name in ("In-Reply-To", "References"):
        del message[name]
    ids = [m for m, direction in thread if direction == Direction.IN or m in seen]
    if ids:
        # The customer's latest message is the one we answer; References keep the thread.
        incoming = [m for m, direction in thread if direction == Direction.IN]
        message["In-Reply-To"] = f"<{(incoming or ids)[-1]}>"
        message["References"] = " ".join(f"<{m}>" for m in ids[-10:])


def forward(unit: Unit, project_key: str, raw: bytes, to: str, reason: str | None) -> int:
    """Send automated mail on to `to` (`--bulk forward:ADDRESS`), the original attached whole.

    The original is never parsed here: the email package's header parsers take quadratic time
    and memory on hostile headers (a Cc of 1 MB: minutes and gigabytes), and this runs in the
    write transaction, without the parsing processes' deadline. Its bytes are attached as they
    came, and its subject is read from its header block with a bounded cost."""
    project = service.find_project(unit.session, project_key)
    smtp = smtp_for(unit, project) if project is not None else None
    if project is None or smtp is None or to.lower() in own_addresses(unit):
        return 0
    message = EmailMessage()
    message["From"] = email.utils.formataddr((smtp.from_name or project.name, smtp.from_address))
    message["To"] = to
    message["Subject"] = "Fwd: " + _subject_of(raw)
    domain = smtp.from_address.rsplit("@", 1)[-1]
    message["Message-ID"] = email.utils.make_msgid("mailgate.forward", domain=domain)
    message["Date"] = email.utils.formatdate(unit.now().timestamp())
    message["Auto-Submitted"] = "auto-generated"
    message[DEFAULT_FINGERPRINT_HEADER] = FINGERPRINT
    message.set_content(
        f"{project.name} received this automated message and forwarded it to you "
        f"({reason or 'automated mail'}). The original is attached.\n"
    )
    message.make_mixed()
    message.attach(_attached_whole(raw))
    queue(unit, smtp.id, OutboxKind.FORWARD, None, [to], message)
    return 1


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_SUBJECT_FIELD = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _subject_of(raw: bytes) -> str:
    """The message's subject, decoded (RFC 2047), on one line and at most 900 characters."""
    end = _HEADER_END.search(raw)
    found = _SUBJECT_FIELD.search(raw, 0, end.start() if end else len(raw))
    if found is None:
        return ""
    # Only the start is decoded: whatever the header holds, the cost stays small.
    value = _LINE_END.sub(b"", found.group(1)[:4000]).decode("utf-8", "replace")
    # An unknown charset or a broken encoded word leaves the text as it came.
    with contextlib.suppress(LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        value = str(email.header.make_header(email.header.decode_header(value)))
    return " ".join(value.split())[:900]


def _attached_whole(raw: bytes) -> EmailMessage:
    """A message/rfc822 part holding `raw` byte for byte (lines ending in CRLF, as SMTP wants):
    a part whose payload is text is written as it is, never parsed or refolded."""
    part = EmailMessage()
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "attachment"
    part["Content-Transfer-Encoding"] = "7bit" if raw.isascii() else "8bit"
    part.set_payload(_LINE_END.sub(b"\r\n", raw).decode("ascii", "surrogateescape"))
    return part


def _policy(recipients: list[str], message: EmailMessage) -> Policy:
    """SMTP's, with UTF-8 headers when an address's local part is not ASCII: RFC 2047 forbids
    encoded words in an address, so such a message can only go as SMTPUTF8 (the outbox
    dead-letters it, with its reason, on a server that does not offer it)."""
    senders = email.utils.getaddresses([str(v) for v in message.get_all("From", [])])
    addresses = [*recipients, *(address for _, address in senders)]
    if all(address.rpartition("@")[0].isascii() for address in addresses):
        return SMTP
    return SMTP.clone(utf8=True)


def queue(
    unit: Unit,
    smtp_server_id: int,
    kind: OutboxKind,
    issue_id: int | None,
    recipients: list[str],
    message: EmailMessage,
) -> str:
    message_id = str(message["Message-ID"]).strip("<>")
    now = unit.now()
    unit.session.connection().execute(
        insert(OUTBOX),
        {
            "smtp_server_id": smtp_server_id,
            "kind": kind,
            "issue_id": issue_id,
            "recipients": recipients,
            "message_id": message_id,
            "raw": message.as_bytes(policy=_policy(recipients, message)),
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return message_id


# About what Jira keeps of a comment (32,767 characters). A notification carries that much of
# one and says where the rest is: one sender's message of megabytes must not become megabytes
# for each of an issue's watchers (an 8.8 MB reply made 183 MB of outbox for eleven people).
NOTIFIED_CHARACTERS = 32_000


def _excerpt(body: str, key: str) -> str:
    if len(body) <= NOTIFIED_CHARACTERS:
        return body
    cut = body.rfind("\n", NOTIFIED_CHARACTERS // 2, NOTIFIED_CHARACTERS)  # at a line's end
    cut = cut if cut > 0 else NOTIFIED_CHARACTERS
    return f"{body[:cut].rstrip()}\n\n[… {len(body) - cut} more characters: the rest is in {key}]"


def _compose(
    unit: Unit,
    event: Event,
    project: Project,
    issue: Issue,
    smtp: SmtpServer,
    key: str,
) -> EmailMessage:
    """The event's message, rendered once; `_address` and a new Message-ID make each copy."""
    template = _OUTBOX_KIND[event.kind]  # the templates are named for the kind
    values = {
        "key": key,
        "summary": issue.summary,
        "project": project.name,
        "body": _excerpt(event.body, key),
        "status": issue.status,
        "by_agent": event.by_agent,
        "actor": event.actor or "",
    }
    text = render(unit.templates, f"{template}.txt", values)
    html = render(unit.templates, f"{template}.html", values)
    message = EmailMessage()
    message["From"] = email.utils.formataddr((smtp.from_name or project.name, smtp.from_address))
    message["To"] = ""  # set per recipient
    message["Reply-To"] = _reply_to(unit.session, project, smtp)
    prefix = "" if event.kind == "created" else "Re: "
    message["Subject"] = f"{prefix}[{key}] {issue.summary}"
    message["Message-ID"] = ""  # set per recipient
    message["Date"] = email.utils.formatdate(unit.now().timestamp())
    message["Auto-Submitted"] = "auto-replied" if event.kind == "created" else "auto-generated"
    message[DEFAULT_FINGERPRINT_HEADER] = FINGERPRINT
    message["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office replies to this
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message

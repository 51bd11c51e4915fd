"""A small asyncio IMAP4rev1 client: what a mailbox loop and `mailbox test` need, and no more.

Connect (implicit TLS or STARTTLS, `mail/connection.py`), CAPABILITY, AUTHENTICATE with XOAUTH2
/OAUTHBEARER (SASL-IR when offered; answering the server's error challenge, RFC 7628 §3.2.3) or
LOGIN, SELECT/EXAMINE, UID SEARCH, UID FETCH BODY.PEEK[] (never sets \\Seen), UID STORE, UID MOVE
(or COPY + \\Deleted + UID EXPUNGE), LIST, STATUS, CREATE, IDLE (RFC 2177) and LOGOUT. Every read
and write has a timeout; a BYE, EOF or timeout closes the connection and raises `ConnectionLost`
— the caller reconnects.

Folder names are given and returned in Unicode, as the admin types and reads them; on the wire
they are modified UTF-7 (RFC 3501 §5.1.3, `mail/utf7.py`). A LOGIN username or password that is
not ASCII goes as a literal (RFC 3501 §4.3), non-synchronizing when the server offers LITERAL+
(RFC 7888).

The parsing of server lines is pure (`parse_*` functions) and tested without a server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from mailgate.mail import sasl, utf7
from mailgate.mail.connection import (
    Connection,
    ConnectionLost,
    MailClient,
    NoAnswer,
)
from mailgate.mail.errors import MailError, TokenRefused, response_code

# RFC 2177: servers may log out clients idle for 30 minutes; re-issue IDLE before that.
IDLE_RENEW_SECONDS = 28 * 60


class ImapError(MailError):
    """The server answered NO or BAD. `code`: the response code in brackets, if any; whether
    it means "try later" is `temporary` (`mail/errors.py`)."""

    def __init__(
        self, status: str, text: str, challenge: sasl.ErrorChallenge | None = None
    ) -> None:
        super().__init__(f"{status} {text}".strip())
        self.status = status
        self.text = text
        self.code = response_code(text)
        self.challenge = challenge


class AuthenticationFailed(ImapError):
    """The server refused the login (NO to AUTHENTICATE / LOGIN)."""


class ImapTokenRefused(AuthenticationFailed, TokenRefused):
    """The server refused the access token, not saying to try later: a fresh token may cure it."""


class LoginNotSendable(AuthenticationFailed):
    """A LOGIN username or password holds CR, LF or NUL, which no IMAP string can carry (a
    quoted string is one line; a literal holds no NUL, and servers end a password at a line
    break). Raised before anything is sent; like a refused login, it waits for the admin."""

    def __init__(self, what: str) -> None:
        super().__init__(
            "",
            f"the {what} holds a line break or a NUL character, which IMAP LOGIN cannot send: "
            f"give the {what} without it",
        )


class SessionEnded(ConnectionLost):
    """The server said BYE."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the server said {text}")
        self.text = text

    @property
    def access_token_expired(self) -> bool:
        """Exchange Online ends a session when the token it began with expires:
        "* BYE Session invalidated - AccessTokenExpired". It gives no response code: the text
        is all there is to go on."""
        return "AccessTokenExpired" in self.text


@dataclass
class Response:
    """One server response line with its literals, e.g. `* 3 FETCH (UID 7 BODY[] {n}` + data."""

    tag: str  # "*", "+", or the command tag
    text: str  # the line, literals replaced by their placeholders
    literals: list[bytes] = field(default_factory=list)


@dataclass
class Selected:
    exists: int
    uidvalidity: int | None
    uidnext: int | None


@dataclass(frozen=True)
class Folder:
    """A folder LIST returned: `name` as the admin reads and types it (decoded from modified
    UTF-7; escaped when the server's name is not valid modified UTF-7, `utf7.shown`), `encoded`
    as the server sent it."""

    name: str
    encoded: str
    delimiter: str | None
    flags: frozenset[str]

    @property
    def selectable(self) -> bool:
        """Whether it holds messages: not a mere level of the hierarchy (RFC 3501 §7.2.2)."""
        return not {"\\NOSELECT", "\\NONEXISTENT"} & {flag.upper() for flag in self.flags}


_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


def parse_capabilities(text: str) -> set[str]:
    """`CAPABILITY IMAP4rev1 AUTH=XOAUTH2 IDLE` (or a `[CAPABILITY …]` code) → names."""
    match = re.search(r"CAPABILITY ([^\]]*)", text, re.IGNORECASE)
    return {c.upper() for c in match.group(1).split()} if match else set()


def parse_search(responses: list[Response]) -> list[int]:
    uids: list[int] = []
    for response in responses:
        match = re.match(r"SEARCH\b(.*)", response.text, re.IGNORECASE)
        if response.tag == "*" and match:
            uids += [int(n) for n in match.group(1).split() if n.isdigit()]
    return sorted(set(uids))


def parse_selected(responses: list[Response]) -> Selected:
    exists, uidvalidity, uidnext = 0, None, None
    for response in responses:
        if match := re.match(r"(\d+) EXISTS", response.text, re.IGNORECASE):
            exists = int(match.group(1))
        if match := re.search(r"\[UIDVALIDITY (\d+)\]", response.text, re.IGNORECASE):
            uidvalidity = int(match.group(1))
        if match := re.search(r"\[UIDNEXT (\d+)\]", response.text, re.IGNORECASE):
            uidnext = int(match.group(1))
    return Selected(exists, uidvalidity, uidnext)


def parse_fetch(responses: list[Response]) -> dict[int, dict[str, object]]:
    """UID → {"size": int, "body": bytes, "flags": str} from FETCH responses."""
    found: dict[int, dict[str, object]] = {}
    for response in responses:
        if response.tag != "*" or not re.match(r"\d+ FETCH", response.text, re.IGNORECASE):
            continue
        uid = re.search(r"UID (\d+)", response.text, re.IGNORECASE)
        if not uid:
            continue
        item: dict[str, object] = found.setdefault(int(uid.group(1)), {})
        if size := re.search(r"RFC822\.SIZE (\d+)", response.text, re.IGNORECASE):
            item["size"] = int(size.group(1))
        if flags := re.search(r"FLAGS \(([^)]*)\)", response.text, re.IGNORECASE):
            item["flags"] = flags.group(1)
        if response.literals and re.search(r"BODY\[\]", response.text, re.IGNORECASE):
            item["body"] = response.literals[0]
    return found


_QUOTED = r'"(?:[^"\\]|\\.)*"'
_LITERAL_PLACEHOLDER = re.compile(r"\{\d+\}")
# `* LIST (\HasNoChildren) "." "Anfragen.Best&AOQ-tigt"` (RFC 3501 §7.2.2): the name is an
# atom, a quoted string or a literal (its placeholder `{n}` here).
_LIST = re.compile(
    rf"(?:LIST|LSUB) \((?P<flags>[^)]*)\) (?P<delimiter>NIL|{_QUOTED}) (?P<name>.*)", re.IGNORECASE
)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_list(responses: list[Response]) -> list[Folder]:
    """The folders of LIST responses, their names decoded (`Folder`)."""
    folders: list[Folder] = []
    for response in responses:
        match = _LIST.match(response.text) if response.tag == "*" else None
        if not match:
            continue
        name = match.group("name").strip()
        if _LITERAL_PLACEHOLDER.fullmatch(name) and response.literals:
            encoded = response.literals[-1].decode("utf-8", "replace")
        else:
            encoded = _unquote(name)
        delimiter = match.group("delimiter")
        folders.append(
            Folder(
                name=utf7.shown(encoded),
                encoded=encoded,
                delimiter=None if delimiter.upper() == "NIL" else _unquote(delimiter),
                flags=frozenset(match.group("flags").split()),
            )
        )
    return folders


def parse_status(responses: list[Response]) -> dict[str, int]:
    """`* STATUS "Done" (MESSAGES 2 UIDNEXT 3)` → {"MESSAGES": 2, "UIDNEXT": 3}."""
    found: dict[str, int] = {}
    for response in responses:
        match = re.match(r"STATUS .*\(([^()]*)\)\s*$", response.text, re.IGNORECASE)
        if response.tag == "*" and match:
            items = match.group(1).split()
            found.update(
                {
                    k.upper(): int(v)
                    for k, v in zip(items[::2], items[1::2], strict=False)
                    if v.isdigit()
                }
            )
    return found


def quote(value: str) -> str:
    """An IMAP quoted string (folder names with spaces, brackets, quotes)."""
    if re.fullmatch(r"[A-Za-z0-9_.\-/]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_name(folder: str) -> str:
    """A folder name given in Unicode, as a command's argument: modified UTF-7 (RFC 3501
    §5.1.3), which is printable ASCII, quoted when it must be."""
    return quote(utf7.encode(folder))


def login_arguments(user: str, password: str) -> list[str | bytes]:
    """LOGIN's two arguments: each a quoted string when it is ASCII, else its UTF-8 bytes for a
    literal (a quoted string holds 7-bit characters only, RFC 3501 §4.3). CR, LF and NUL fit in
    neither a quoted string nor what servers take in a literal: `LoginNotSendable`."""
    arguments: list[str | bytes] = []
    for what, value in (("username", user), ("password", password)):
        if any(character in value for character in "\r\n\0"):
            raise LoginNotSendable(what)
        if value.isascii():
            arguments.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            arguments.append(value.encode("utf-8"))
    return arguments


class ImapClient(MailClient):
    """One IMAP connection: `ImapClient.connect(...)` as an async context manager, or its steps
    one at a time (`MailClient`)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.capabilities: set[str] = set()
        self.news = False  # the server announced new mail (EXISTS) outside IDLE
        self._tag = 0

    # -- connecting ------------------------------------------------------------------------------

    async def read_greeting(self) -> None:
        greeting = await self._read_response()
        if greeting.tag != "*" or not re.match(r"(OK|PREAUTH)\b", greeting.text, re.IGNORECASE):
            raise ConnectionLost(f"unexpected greeting: {greeting.text[:200]}")
        self.greeting = f"* {greeting.text}"
        self.capabilities = parse_capabilities(greeting.text)

    STARTTLS = "STARTTLS"

    async def offers_starttls(self) -> bool:
        if not self.capabilities:  # the greeting said nothing of them
            await self.refresh_capabilities()
        return "STARTTLS" in self.capabilities

    def forget_capabilities(self) -> None:
        self.capabilities = set()

    async def refresh_capabilities(self) -> None:
        for response in await self.command("CAPABILITY"):
            if response.tag == "*" and response.text.upper().startswith("CAPABILITY"):
                self.capabilities = parse_capabilities(response.text)

    @property
    def sasl_mechanisms(self) -> set[str]:
        return {c[5:] for c in self.capabilities if c.startswith("AUTH=")}

    # -- reading and writing ---------------------------------------------------------------------

    async def _read_response(self) -> Response:
        return await self._complete(await self.connection.readline())

    async def _complete(self, line: bytes) -> Response:
        """The response that begins with `line`: its literals, and the lines after each."""
        parts: list[bytes] = []
        literals: list[bytes] = []
        while match := _LITERAL.search(line):
            size = int(match.group(1))
            parts.append(line[: match.start()] + b"{" + str(size).encode() + b"}")
            literals.append(await self.connection.readexactly(size))
            line = await self.connection.readline()
        parts.append(line.rstrip(b"\r\n"))
        text = b"".join(parts).decode("utf-8", "replace")
        tag, _, rest = text.partition(" ")
        if tag == "*" and rest.upper().startswith("BYE"):
            raise SessionEnded(rest)
        return Response(tag=tag, text=rest, literals=literals)

    async def _send(self, data: bytes) -> None:
        await self.connection.send(data)

    def _next_tag(self) -> str:
        self._tag += 1
        return f"M{self._tag:04d}"

    async def command(self, line: str) -> list[Response]:
        """Send one command; the untagged responses and the completion, or ImapError on NO/BAD."""
        return await self._command([line])

    async def _command(self, parts: Sequence[str | bytes]) -> list[Response]:
        """`command` for a command with literals: its `parts` are text, and bytes each sent as a
        literal (RFC 3501 §4.3) — `{n+}` at once when the server offers LITERAL+ (or LITERAL-
        and it is at most 4096 bytes, RFC 7888), else `{n}` and the server's "+" awaited."""
        tag = self._next_tag()
        untagged: list[Response] = []
        line = f"{tag} "
        for part in parts:
            if isinstance(part, str):
                line += part
                continue
            at_once = "LITERAL+" in self.capabilities or (
                "LITERAL-" in self.capabilities and len(part) <= 4096
            )
            await self._send(f"{line}{{{len(part)}{'+' if at_once else ''}}}\r\n".encode())
            if not at_once:
                await self._read_until(tag, untagged, continuation=True)
            await self._send(part)
            line = ""
        await self._send(f"{line}\r\n".encode())
        await self._read_until(tag, untagged)
        return untagged

    async def _read_until(
        self, tag: str, untagged: list[Response], *, continuation: bool = False
    ) -> None:
        """Read responses into `untagged` up to the command's completion (added too: it may
        carry response codes) or, with `continuation`, up to the server's "+" go-ahead for a
        literal; ImapError when the command ends in NO or BAD."""
        while True:
            response = await self._read_response()
            if continuation and response.tag == "+":
                return
            if response.tag == tag:
                status, _, text = response.text.partition(" ")
                if status.upper() != "OK":
                    raise ImapError(status.upper(), text)
                untagged.append(response)
                return
            if response.tag == "*" and re.match(r"\d+ EXISTS", response.text, re.I):
                # New mail told in passing (RFC 3501 §7.3.1): the server won't repeat it in IDLE.
                self.news = True
            untagged.append(response)

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, mechanism: str, user: str, token: str) -> str:
        initial = sasl.b64(sasl.initial_response(mechanism, user, token, self.host, self.port))
        tag = self._next_tag()
        if "SASL-IR" in self.capabilities:  # RFC 4959
            await self._send(f"{tag} AUTHENTICATE {mechanism} {initial}\r\n".encode())
        else:
            await self._send(f"{tag} AUTHENTICATE {mechanism}\r\n".encode())
            first = await self._read_response()
            if first.tag != "+":
                status, _, text = first.text.partition(" ")
                raise AuthenticationFailed(status.upper(), text)
            await self._send(initial.encode() + b"\r\n")
        challenge: sasl.ErrorChallenge | None = None
        while True:
            response = await self._read_response()
            if response.tag == "+":
                # The error challenge: answer it, then the server sends the final NO.
                challenge = sasl.parse_error_challenge(response.text)
                await self._send(sasl.b64(sasl.error_reply(mechanism)).encode() + b"\r\n")
                continue
            if response.tag != tag:
                if response.text.upper().startswith("CAPABILITY"):
                    self.capabilities = parse_capabilities(response.text)
                continue
            status, _, text = response.text.partition(" ")
            if status.upper() != "OK":
                refused = AuthenticationFailed(status.upper(), text, challenge)
                if refused.temporary:
                    raise refused
                raise ImapTokenRefused(status.upper(), text, challenge)
            if response_code(text) == "CAPABILITY":
                self.capabilities = parse_capabilities(text)
            else:
                await self.refresh_capabilities()
            return text

    async def login(self, user: str, password: str) -> str:
        """LOGIN with a password (RFC 3501 §6.2.3). A username or password that is not ASCII is
        sent as a literal of its UTF-8 bytes; one holding CR, LF or NUL raises
        `LoginNotSendable` before anything is sent."""
        name, secret = login_arguments(user, password)
        try:
            responses = await self._command(["LOGIN ", name, " ", secret])
        except ImapError as exc:
            raise AuthenticationFailed(exc.status, exc.text) from None
        await self.refresh_capabilities()
        return responses[-1].text.partition(" ")[2]  # the completion's text, after "OK"

    # -- the mailbox -------------------------------------------------------------------------------

    async def select(self, folder: str, *, readonly: bool = False) -> Selected:
        verb = "EXAMINE" if readonly else "SELECT"
        return parse_selected(await self.command(f"{verb} {mailbox_name(folder)}"))

    async def uid_search(self, criteria: str) -> list[int]:
        return parse_search(await self.command(f"UID SEARCH {criteria}"))

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        ordered = sorted(uids)
        for start in range(0, len(ordered), 500):  # servers limit a command line's length
            chunk = ordered[start : start + 500]
            found = parse_fetch(await self.command(f"UID FETCH {_set(chunk)} (UID RFC822.SIZE)"))
            sizes.update({uid: int(str(item.get("size", 0))) for uid, item in found.items()})
        return sizes

    async def fetch(self, uid: int) -> bytes | None:
        """The message, without setting \\Seen (BODY.PEEK); None when it is gone."""
        return (await self.fetch_many([uid])).get(uid)

    async def fetch_many(self, uids: list[int]) -> dict[int, bytes]:
        """The messages by UID, in one command, without setting \\Seen; a message gone meanwhile
        is absent."""
        if not uids:
            return {}
        found = parse_fetch(await self.command(f"UID FETCH {_set(uids)} (UID BODY.PEEK[])"))
        asked = set(uids)
        return {
            uid: body
            for uid, item in found.items()
            if uid in asked and isinstance(body := item.get("body"), bytes)
        }

    async def mark_seen(self, uids: int | list[int]) -> None:
        await self.command(f"UID STORE {_set(uids)} +FLAGS.SILENT (\\Seen)")

    async def delete(self, uids: int | list[int]) -> None:
        await self.command(f"UID STORE {_set(uids)} +FLAGS.SILENT (\\Deleted)")
        await self._expunge(uids)

    async def move(self, uids: int | list[int], folder: str) -> None:
        if "MOVE" in self.capabilities:
            await self.command(f"UID MOVE {_set(uids)} {mailbox_name(folder)}")
            return
        await self.command(f"UID COPY {_set(uids)} {mailbox_name(folder)}")
        await self.delete(uids)

    async def list_folders(self, pattern: str = "*") -> list[Folder]:
        """The folders whose names match `pattern` (given in Unicode; `*` and `%` are LIST's
        wildcards, RFC 3501 §6.3.8), names decoded."""
        return parse_list(await self.command(f'LIST "" {mailbox_name(pattern)}'))

    async def status(self, folder: str, items: Sequence[str] = ("MESSAGES",)) -> dict[str, int]:
        """STATUS of a folder that is not the selected one (RFC 3501 §6.3.10): item → number.
        ImapError when there is no such folder."""
        return parse_status(
            await self.command(f"STATUS {mailbox_name(folder)} ({' '.join(items)})")
        )

    async def create(self, folder: str) -> None:
        await self.command(f"CREATE {mailbox_name(folder)}")

    async def _expunge(self, uids: int | list[int]) -> None:
        # UID EXPUNGE (UIDPLUS) removes only these messages. Plain EXPUNGE would also remove
        # messages someone else marked \Deleted, so without UIDPLUS they stay flagged
        # \Deleted for the server or the next client to expunge.
        if "UIDPLUS" in self.capabilities:
            await self.command(f"UID EXPUNGE {_set(uids)}")

    async def idle(self, wait: float) -> bool:
        """IDLE until the server reports new mail or `wait` seconds pass; True on new mail."""
        tag = self._next_tag()
        await self._send(f"{tag} IDLE\r\n".encode())
        first = await self._read_response()
        if first.tag != "+":
            raise ImapError("NO", f"IDLE refused: {first.text}")
        news = False
        clock = asyncio.get_running_loop()
        deadline = clock.time() + wait
        while True:
            # One deadline for the whole IDLE, however many other lines arrive meanwhile.
            try:
                line = await self.connection.readline(timeout=max(0.001, deadline - clock.time()))
            except NoAnswer:
                break  # the end of this IDLE, not an error
            response = await self._complete(line)
            if response.tag == "*" and re.match(r"\d+ (EXISTS|RECENT)", response.text, re.I):
                news = True
                break
        await self._send(b"DONE\r\n")
        while True:
            response = await self._read_response()
            if response.tag == tag:
                return news
            if response.tag == "*" and re.match(r"\d+ EXISTS", response.text, re.I):
                news = True

    async def logout(self) -> None:
        with suppress(ConnectionLost):
            await self.command("LOGOUT")


def _set(uids: int | list[int]) -> str:
    return str(uids) if isinstance(uids, int) else ",".join(str(u) for u in sorted(uids))

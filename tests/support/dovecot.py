"""A real Dovecot 2.3 on loopback that checks OAuth 2.0 bearer tokens, for the test suite.

:class:`Dovecot` writes a standalone config (no include of the system one) into a short temporary
folder and runs ``dovecot -F -c CONF`` as its own instance: IMAP (STARTTLS) and IMAPS, POP3 (STLS)
and POP3S, LMTP and an auth listener for Postfix (``tests/support/postfix.py``), all on free
127.0.0.1 ports, with a ``trustme`` certificate for ``localhost`` / ``127.0.0.1``
(:attr:`Dovecot.ca_file` for clients).
XOAUTH2 and OAUTHBEARER are checked by RFC 7662 introspection, one ``oauth2`` passdb per
introspection URL given (tried in order); PLAIN and LOGIN against a passwd-file that is also the
userdb. Mail is Maildir under the folder, owned by ``mail:mail`` (run as root) or by the user
running the tests (rootless). The project's notes on running real servers have the facts this is built on.

Register the fixtures with ``pytest_plugins = ["tests.support.dovecot"]`` in a conftest.py:

* ``dovecot`` (function): a fresh instance introspecting at the ``emulator`` (whose reset state
  gets the resource server :data:`RESOURCE_SERVER` registered), with the users
  :data:`DEFAULT_USERS` and no mail. Add users with :meth:`Dovecot.add_users`, mail with
  :meth:`Dovecot.deliver`; read a folder's raw messages with :meth:`Dovecot.messages`.
* ``dovecot_factory`` (function): ``factory(introspection_urls=[...], users={...})`` starts a
  private instance (e.g. one that also asks oidc-provider), closed after the test.

Why a new instance per test: it listens 20–30 ms after the exec and is gone ~10 ms after the
kill, so a fresh server costs a test about 40 ms. A test may then restart, kill or misconfigure
its server, and its log holds only its own story, with no reset protocol to keep correct.

Skip rule: when Dovecot is not installed or does not start, the fixtures FAIL if ``$CI`` is set or
the process runs as root; only a developer machine without root gets a ``pytest.skip``.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import os
import pwd
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import trustme

from tests.support.emulator import RunningEmulator
from tests.support.servers import SEARCH_PATH, unavailable

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
GRACE_PERIOD = 1.0  # seconds a graceful stop gives the sessions to say goodbye
DOVEADM_TIMEOUT = 15.0

# The credentials Dovecot's oauth2 passdb sends to the emulator's introspection endpoint.
RESOURCE_SERVER = ("dovecot", "dovecot-introspection-secret")

# Users every `dovecot` fixture starts with (address → password).
DEFAULT_USERS: Mapping[str, str | None] = {
    "alice@example.test": "alice-password",
    "bob@example.test": "bob-password",
}


# Instances started and not yet stopped, killed when the interpreter exits: an instance a
# failed test script left running would otherwise outlive it.
_running: weakref.WeakSet[Dovecot] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for instance in list(_running):
        instance.kill()


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed here (an environment problem)."""


class DovecotStartError(RuntimeError):
    """Dovecot is installed but did not come up (the message carries its log)."""


class DoveadmError(RuntimeError):
    """A ``doveadm`` command failed."""


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one instance (kept across :meth:`Dovecot.restart`)."""

    imap: int  # plain, STARTTLS offered
    imaps: int  # implicit TLS
    pop3: int  # plain, STLS offered
    pop3s: int  # implicit TLS
    lmtp: int  # delivery, e.g. from Postfix
    auth: int  # Dovecot SASL for Postfix's smtpd_sasl_path = inet:…

    @classmethod
    def free(cls) -> Ports:
        """Ports the kernel calls free right now (held open together so they differ)."""
        with contextlib.ExitStack() as stack:
            numbers = []
            for _ in range(6):
                sock = stack.enter_context(socket.socket())
                sock.bind((HOST, 0))
                numbers.append(int(sock.getsockname()[1]))
        return cls(*numbers)

    def listening(self) -> tuple[int, ...]:
        return (*self.mail(), self.lmtp, self.auth)

    def mail(self) -> tuple[int, ...]:
        """The ports mail clients use."""
        return (self.imap, self.imaps, self.pop3, self.pop3s)


def find_binaries() -> tuple[str, str]:
    """Paths of ``dovecot`` and ``doveadm``; :class:`DovecotUnavailable` when missing."""
    dovecot = shutil.which("dovecot", path=SEARCH_PATH)
    doveadm = shutil.which("doveadm", path=SEARCH_PATH)
    if dovecot is None or doveadm is None:
        raise DovecotUnavailable(
            "dovecot/doveadm not found: install dovecot-imapd dovecot-pop3d dovecot-lmtpd "
            "(tests/support/install-system-deps.sh does, as root on Debian)"
        )
    return dovecot, doveadm


def _user_line(address: str, password: str | None) -> str:
    for value in (address, password or ""):
        if any(character in value for character in ":\n\r"):
            raise ValueError(f"a passwd-file field can't hold {value!r}")
    # No password: "!" matches no CRYPT hash, so only a bearer token logs the user in.
    stored = "{CRYPT}!" if password is None else f"{{PLAIN}}{password}"
    # user:password:uid:gid:gecos:home:shell:extra — the empty fields must be there.
    return f"{address}:{stored}::::::"


class Dovecot:
    """One Dovecot instance in its own temporary folder. Use as a context manager, or call
    :meth:`start` and :meth:`stop` (or :meth:`close`, which also deletes the folder)."""

    host = HOST

    def __init__(
        self,
        *,
        introspection_urls: Sequence[str] = (),
        users: Mapping[str, str | None] | None = None,
        start_timeout: float = START_TIMEOUT,
        max_connections: int | None = None,
    ) -> None:
        self.dovecot_binary, self.doveadm_binary = find_binaries()
        # A short folder in /tmp, not pytest's tmp_path: unix sockets live under base_dir and
        # their paths must stay below 108 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="mailgate-dovecot-"))
        # mkdtemp makes it 0700; the mail (uid 8), dovecot and dovenull users must get through.
        self.folder.chmod(0o755)
        self.introspection_urls = tuple(introspection_urls)
        self.start_timeout = start_timeout
        # None: Dovecot's own limits (100 imap processes, one login process per connection).
        self.max_connections = max_connections
        self.ports = Ports.free()
        self.config_file = self.folder / "dovecot.conf"
        self.log_file = self.folder / "dovecot.log"
        self.stderr_file = self.folder / "dovecot.stderr"
        self.users_file = self.folder / "users"
        self.mail_root = self.folder / "mail"
        self.home_root = self.folder / "home"
        tls = self.folder / "tls"
        tls.mkdir()
        self.ca_file = tls / "ca.pem"
        self._cert_file, self._key_file = tls / "server.pem", tls / "server.key"
        self._mail_user = _MailUser.for_this_process()
        self._users: dict[str, str | None] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False
        self._write_certificate()
        self._write_users(dict(users or {}))
        self._prepare_mail_folders()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Dovecot:
        """Start the instance; returns once every port accepts connections.

        Raises :class:`DovecotStartError` with the log's tail when it doesn't within
        ``start_timeout``. Should another program take one of the ports before the first start,
        it is retried on fresh ones; later starts keep the ports, as a restarted server would.
        """
        for attempt in range(3):
            try:
                self._start_once()
                break
            except DovecotStartError as exc:
                if self._started or "Address already in use" not in str(exc) or attempt == 2:
                    raise
                self.ports = Ports.free()
        self._started = True
        return self

    def _start_once(self) -> None:
        if self.running:
            return
        self._write_config()
        # A master killed while it rewrote its list of instances leaves the dotlock behind, and
        # the next master would wait for it to go stale before listening. Nothing else of this
        # instance runs now, so the lock is nobody's.
        (self.folder / "state" / "instances.lock").unlink(missing_ok=True)
        self.log_file.touch()
        _running.add(self)
        with open(self.stderr_file, "wb") as stderr:
            self._process = subprocess.Popen(
                [self.dovecot_binary, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C in the terminal is pytest's, not Dovecot's
            )
        deadline = time.monotonic() + self.start_timeout
        pending = list(self.ports.listening())
        while pending:
            if self._process.poll() is not None or time.monotonic() > deadline:
                status = self._process.returncode
                what = (
                    f"dovecot exited with status {status}"
                    if status is not None
                    else f"dovecot did not listen on {pending} within {self.start_timeout:.0f}s"
                )
                # Not waiting for the ports: another program may be the one holding them.
                self._shut_down(signal.SIGKILL, wait_for_ports=False)
                raise DovecotStartError(f"{what}\n{self._tails()}")
            if _accepts(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.01)

    def stop(self) -> None:
        """Shut down as an administrator would: every logged-in IMAP session gets
        ``* BYE Server shutting down.`` first. Mail, users and ports stay for :meth:`start`."""
        if self._process is not None and self.running:
            group = self._process.pid
            # Over TLS a session's goodbye travels through its login process (the TLS proxy),
            # which a signal would stop before it passed the goodbye on: kick the sessions, and
            # signal once they have ended and the proxies have let their clients go.
            self.kick()
            _wait_until(lambda: not _group_members(group, names={"imap", "pop3"}), GRACE_PERIOD)
            _wait_until(lambda: not _established_on(self.ports.mail()), 0.1)
        self._shut_down(signal.SIGTERM)

    def kill(self) -> None:
        """Die at once, as in a crash or a power cut: clients see their connection close
        without a goodbye. Mail, users and ports stay for :meth:`start`."""
        self._shut_down(signal.SIGKILL)

    def _shut_down(self, how: signal.Signals, *, wait_for_ports: bool = True) -> None:
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return
        # Signal the whole process group (the master leads its own session): each imap/pop3
        # process says goodbye and exits within milliseconds. The master itself, signalled
        # alone, takes 1 to 6 s to stop its children, and even now often sleeps up to a second
        # before it exits; once its children are gone it has nothing left to do.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, how)
        _wait_until(
            lambda: process.poll() is not None or not _group_members(process.pid), GRACE_PERIOD
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # Children exit on their own schedule; a restart can bind the ports once they have.
        deadline = time.monotonic() + STOP_TIMEOUT
        while wait_for_ports and any(_accepts(port) for port in self.ports.listening()):
            if time.monotonic() > deadline:
                raise DovecotStartError(f"dovecot's ports still accept after stop\n{self._tails()}")
            time.sleep(0.01)

    def restart(self, *, crash: bool = False) -> Dovecot:
        """Stop (or with ``crash``, :meth:`kill`) and start again on the same ports with the
        same mail and users: "the server restarted"."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Stop at once (no goodbyes needed at the end of a test) and delete the folder."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The master process's pid while running."""
        return self._process.pid if self.running and self._process else None

    # -- for clients -------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this instance's certificate (for 127.0.0.1 or
        localhost)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def imap_port(self) -> int:
        return self.ports.imap

    @property
    def imaps_port(self) -> int:
        return self.ports.imaps

    @property
    def pop3_port(self) -> int:
        return self.ports.pop3

    @property
    def pop3s_port(self) -> int:
        return self.ports.pop3s

    @property
    def lmtp_port(self) -> int:
        return self.ports.lmtp

    @property
    def auth_port(self) -> int:
        return self.ports.auth

    @property
    def cert_file(self) -> Path:
        """The server's certificate chain (PEM), signed by :attr:`ca_file`: another server of
        the test (Postfix) can present it too, so that one CA file trusts both."""
        return self._cert_file

    @property
    def key_file(self) -> Path:
        """The private key of :attr:`cert_file` (PEM)."""
        return self._key_file

    # -- users and mail ----------------------------------------------------------------------

    @property
    def users(self) -> Mapping[str, str | None]:
        return dict(self._users)

    def add_users(self, users: Mapping[str, str | None]) -> None:
        """Add or change users (address → password; None: bearer tokens only). Takes effect at
        the next login: Dovecot re-reads the passwd-file when it changes."""
        self._write_users({**self._users, **users})

    def set_users(self, users: Mapping[str, str | None]) -> None:
        """Replace all users."""
        self._write_users(dict(users))

    def deliver(self, user: str, message: bytes, folder: str = "INBOX") -> None:
        """Put a raw RFC 5322 message into the user's folder (``doveadm save``, so Dovecot
        assigns the UID and notifies IDLE sessions)."""
        self.doveadm("save", "-u", user, "-m", folder, input=message)

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages of a folder in UID order, byte for byte as an IMAP client gets them
        (``BODY.PEEK[]``: CRLF line ends, nothing marked seen). Needs no password: it talks to
        a pre-authenticated ``imap`` process that ``doveadm exec`` starts for the user."""
        if user not in self._users:
            raise DoveadmError(f"no user {user!r} (known: {', '.join(self._users) or 'none'})")
        errors = self.folder / "exec-imap.stderr"
        command = [self.doveadm_binary, "-c", str(self.config_file), "exec", "imap", "-u", user]
        client = imaplib.IMAP4_stream(f"{shlex.join(command)} 2>>{shlex.quote(str(errors))}")
        try:
            quoted = '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
            status, data = client.select(quoted, readonly=True)
            if status != "OK":
                raise DoveadmError(f"can't open {folder!r} of {user}: {data}")
            if not data or data[0] in (None, b"0"):
                return []
            status, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
            if status != "OK":
                raise DoveadmError(f"FETCH in {folder!r} of {user} failed: {data}")
            # Each message comes as (b'N (UID U BODY[] {SIZE}', literal), then b')'.
            items: list[object] = list(data)
            return [item[1] for item in items if isinstance(item, tuple)]
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()

    def create_folder(self, user: str, folder: str) -> None:
        """Create a mailbox (e.g. ``Archive``) for the user."""
        self.doveadm("mailbox", "create", "-u", user, folder)

    def mailbox_status(self, user: str, folder: str = "INBOX") -> dict[str, int]:
        """``messages``, ``uidnext``, ``uidvalidity`` and ``unseen`` of a folder."""
        output = self.doveadm(
            "-f",
            "flow",
            "mailbox",
            "status",
            "-u",
            user,
            "messages uidnext uidvalidity unseen",
            folder,
        )
        # "INBOX messages=1 uidnext=2 …": the folder's name, then the fields.
        fields = (item.split("=", 1) for item in output.split() if "=" in item)
        return {key: int(value) for key, value in fields}

    def change_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give the folder a new UIDVALIDITY (RFC 3501 §2.3.1.1: clients must forget every UID
        they know); returns it. A session that has the folder selected is disconnected."""
        old = self.mailbox_status(user, folder)["uidvalidity"]
        new = max(old + 1, int(time.time()))
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new

    def sessions_in_idle(self) -> int:
        """How many IMAP sessions are in IDLE now, read from the titles of the imap processes
        ("…/imap [user ip IDLE]"); Linux's /proc. Needs `max_connections`, which turns the
        titles on."""
        title = f"{self.folder.name}/imap ["
        idle = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue  # gone meanwhile
                if title in command and command.rstrip("\0 ").endswith(" IDLE]"):
                    idle += 1
        return idle

    def kick(self, user: str = "*") -> None:
        """Disconnect the IMAP/POP3 sessions of users matching ``user`` (a mask)."""
        self.doveadm("kick", user, check=False)

    def doveadm(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        """Run ``doveadm -c CONF ARGS``; returns its stdout. :class:`DoveadmError` on failure."""
        command = [self.doveadm_binary, "-c", str(self.config_file), *args]
        result = subprocess.run(
            command, input=input, capture_output=True, timeout=DOVEADM_TIMEOUT, check=False
        )
        if check and result.returncode != 0:
            raise DoveadmError(
                f"`doveadm {' '.join(args)}` exited with {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        return result.stdout.decode(errors="replace")

    # -- logs --------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything Dovecot has logged so far (auth_verbose is on: failed logins are there)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _tails(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stderr_file, self.log_file):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    # -- files -------------------------------------------------------------------------------

    def _write_certificate(self) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", HOST)
        cert.private_key_and_cert_chain_pem.write_to_path(str(self._cert_file))
        cert.private_key_pem.write_to_path(str(self._key_file))
        ca.cert_pem.write_to_path(str(self.ca_file))

    def _write_users(self, users: dict[str, str | None]) -> None:
        text = "".join(_user_line(address, password) + "\n" for address, password in users.items())
        # Replace, never rewrite in place: the auth process may read it at any moment.
        staging = self.users_file.with_suffix(".new")
        staging.write_text(text)
        staging.chmod(0o644)
        staging.replace(self.users_file)
        self._users = users

    def _prepare_mail_folders(self) -> None:
        for folder in (self.mail_root, self.home_root):
            folder.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(folder, self._mail_user.uid, self._mail_user.gid)

    def _write_config(self) -> None:
        run, state = self.folder / "run", self.folder / "state"
        run.mkdir(exist_ok=True)
        state.mkdir(exist_ok=True)
        oauth2_files = []
        for number, url in enumerate(self.introspection_urls, 1):
            path = self.folder / f"oauth2-{number}.conf.ext"
            path.write_text(_oauth2_settings(url))
            path.chmod(0o644)  # read by the auth process, which runs as the dovecot user
            oauth2_files.append(path)
        self.config_file.write_text(
            "\n".join(
                [
                    "# Written by tests/support/dovecot.py: a standalone instance.",
                    f"instance_name = {self.folder.name}",
                    f"base_dir = {run}",
                    f"state_dir = {state}",
                    f"log_path = {self.log_file}",
                    f"listen = {HOST}",
                    "protocols = imap pop3 lmtp",
                    _tls_settings(self._cert_file, self._key_file),
                    _mail_settings(self._mail_user, self.mail_root),
                    _listener_settings(self.ports),
                    _auth_settings(oauth2_files, self.users_file, self.home_root),
                    _capacity_settings(self.max_connections) if self.max_connections else "",
                ]
            )
        )


@dataclass(frozen=True)
class _MailUser:
    """Who owns the mail: ``mail`` as root; whoever runs the tests otherwise."""

    name: str
    group: str
    uid: int
    gid: int

    @classmethod
    def for_this_process(cls) -> _MailUser:
        if os.geteuid() == 0:
            mail = pwd.getpwnam("mail")
            return cls("mail", grp.getgrgid(mail.pw_gid).gr_name, mail.pw_uid, mail.pw_gid)
        uid, gid = os.geteuid(), os.getegid()
        return cls(pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name, uid, gid)


def _oauth2_settings(introspection_url: str) -> str:
    # Dovecot turns user:pass in the URL into HTTP Basic and POSTs token=…&client_id=&
    # client_secret=; it must introspect because the tokens are opaque.
    return "\n".join(
        [
            f"introspection_url = {introspection_url}",
            "introspection_mode = post",
            "force_introspection = yes",
            "username_attribute = username",
            "active_attribute = active",
            "active_value = true",
            "timeout_msecs = 5000",
            "",
        ]
    )


def _tls_settings(cert_file: Path, key_file: Path) -> str:
    dh = Path("/usr/share/dovecot/dh.pem")
    return "\n".join(
        [
            "ssl = yes",
            f"ssl_cert = <{cert_file}",
            f"ssl_key = <{key_file}",
            # Only asked for when a client picks a DHE cipher; Debian ships the file.
            f"ssl_dh = <{dh}" if dh.is_file() else "",
        ]
    )


def _mail_settings(user: _MailUser, mail_root: Path) -> str:
    lines = [
        f"mail_location = maildir:{mail_root}/%u",
        f"mail_uid = {user.uid}",
        f"mail_gid = {user.gid}",
        f"first_valid_uid = {user.uid}",
        f"first_valid_gid = {user.gid}",
    ]
    if os.geteuid() != 0:
        # Rootless: every service runs as this user, and nothing can chroot.
        lines += [
            f"default_internal_user = {user.name}",
            f"default_internal_group = {user.group}",
            f"default_login_user = {user.name}",
            *(
                f"service {name} {{\n  chroot =\n}}"
                for name in ("anvil", "imap-login", "pop3-login")
            ),
            "service auth-worker {\n  user = $default_internal_user\n}",
        ]
    return "\n".join(lines)


def _listener_settings(ports: Ports) -> str:
    return f"""\
service imap-login {{
  inet_listener imap {{
    port = {ports.imap}
  }}
  inet_listener imaps {{
    port = {ports.imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports.pop3}
  }}
  inet_listener pop3s {{
    port = {ports.pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {ports.lmtp}
  }}
}}
service auth {{
  inet_listener {{
    address = {HOST}
    port = {ports.auth}
  }}
}}"""


def _capacity_settings(connections: int) -> str:
    """Limits for `connections` IMAP/POP3 sessions at once (a benchmark's thousand IDLE
    mailboxes): an imap process each, as Dovecot always has, but the TLS of every session in a
    few login processes (high-performance mode) instead of one login process per session, and
    room for them in the auth, anvil and master's client limits (`default_client_limit`)."""
    room = connections + 100
    return f"""\
default_client_limit = {2 * room}
mail_max_userip_connections = {room}
# An IDLE session hears of new mail through inotify, but the imap processes of one system user
# get 128 inotify instances (fs.inotify.max_user_instances); the others look every this often.
mailbox_idle_check_interval = 1 secs
# Each imap process's title says what it does: `sessions_in_idle` counts those in IDLE.
verbose_proctitle = yes
service imap-login {{
  service_count = 0
  process_min_avail = 2
  process_limit = 4
  client_limit = {room}
}}
service pop3-login {{
  service_count = 0
  process_limit = 2
  client_limit = {room}
}}
service imap {{
  process_limit = {room}
}}
service pop3 {{
  process_limit = {room}
}}
"""


def _auth_settings(oauth2_files: Sequence[Path], users_file: Path, home_root: Path) -> str:
    oauth2_passdbs = "".join(
        f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {path}\n}}\n"
        for path in oauth2_files
    )
    return f"""\
auth_mechanisms = xoauth2 oauthbearer plain login
auth_verbose = yes
# Negative tests must not wait. No delay after a failure, and no anvil penalty slowing every
# next login from 127.0.0.1 (2, 4, 8 … 15 s): the auth process can't open the penalty socket.
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
# Even with no delay, the auth process holds each failure for its 0.5 s flush timer unless the
# reply carries "nodelay". A failed passdb's fields are dropped, but those of a passdb that says
# "noauthenticate" (result NEXT) are kept: this one only sets the field and passes the request
# on to the real ones below.
passdb {{
  driver = static
  args = noauthenticate nodelay=yes
}}
# Tried in order: one per introspection endpoint.
{oauth2_passdbs}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {users_file}
}}
# passwd-file, not static: a static userdb breaks LMTP delivery.
userdb {{
  driver = passwd-file
  args = username_format=%u {users_file}
  default_fields = home={home_root}/%u
}}
"""


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _group_members(group: int, names: Container[str] | None = None) -> list[str]:
    """Names of the running (not zombie) processes of a process group, its leader excepted,
    optionally only those called one of ``names``. Reads Linux's /proc; elsewhere it reports
    one unknown member, so that callers wait out their timeouts."""
    proc = Path("/proc")
    if not proc.is_dir():
        return ["?"]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == group:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, pgrp = stat[stat.rindex(")") + 1 :].split()[:3]
        if int(pgrp) == group and state != "Z" and (names is None or name in names):
            members.append(name)
    return members


def _established_on(ports: Container[int]) -> int:
    """How many server-side loopback TCP connections on ``ports`` are still open (Linux's
    /proc/net/tcp; 0 elsewhere)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    established = 0
    for row in table:
        local, _remote, state = row.split()[1:4]
        if state == "01" and int(local.rsplit(":", 1)[1], 16) in ports:
            established += 1
    return established


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# pytest fixtures


def _unavailable(reason: str) -> NoReturn:
    unavailable("Dovecot", reason)


def start_dovecot(**options: Any) -> Dovecot:
    """A started :class:`Dovecot`, or the skip rule applied."""
    try:
        instance = Dovecot(**options)
    except DovecotUnavailable as exc:
        _unavailable(str(exc))
    try:
        return instance.start()
    except DovecotStartError as exc:
        instance.close()
        _unavailable(str(exc))


def emulator_introspection_url(emulator: RunningEmulator) -> str:
    """The emulator's introspection URL with :data:`RESOURCE_SERVER` as HTTP Basic."""
    username, password = RESOURCE_SERVER
    return emulator.introspection_url.replace("://", f"://{username}:{password}@", 1)


@pytest.fixture
def dovecot(emulator: RunningEmulator) -> Iterator[Dovecot]:
    """A fresh Dovecot for the test, introspecting at the (reset) emulator, with the users
    :data:`DEFAULT_USERS` and no mail."""
    emulator.state.register_resource_server(*RESOURCE_SERVER)
    instance = start_dovecot(
        introspection_urls=[emulator_introspection_url(emulator)], users=DEFAULT_USERS
    )
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """``factory(introspection_urls=[...], users={...})`` → a private running :class:`Dovecot`,
    closed after the test. E.g. both sources, emulator first::

        dovecot_factory(introspection_urls=[
            emulator_introspection_url(emulator),
            oidc_provider.introspection_url_with_credentials(),
        ])

    (register :data:`RESOURCE_SERVER` on the emulator yourself when you use it).
    """
    started: list[Dovecot] = []

    def factory(**options: Any) -> Dovecot:
        instance = start_dovecot(**options)
        started.append(instance)
        return instance

    try:
        yield factory
    finally:
        for instance in started:
            instance.close()


__all__ = [
    "DEFAULT_USERS",
    "RESOURCE_SERVER",
    "DoveadmError",
    "Dovecot",
    "DovecotStartError",
    "DovecotUnavailable",
    "Ports",
    "dovecot",
    "dovecot_factory",
    "emulator_introspection_url",
    "find_binaries",
    "start_dovecot",
]

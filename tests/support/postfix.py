"""A real Postfix 3 on loopback: SMTP submission that checks OAuth 2.0 tokens and delivers into
the test Dovecot, for the test suite.

:class:`Postfix` writes ``main.cf`` and ``master.cf`` into a temporary folder and runs its own
instance with ``postfix -c DIR start`` (queue and data directories in the same folder, nothing of
the system's Postfix used but its binaries and ``/etc/postfix/postfix-files``). Two smtpd
listeners on free 127.0.0.1 ports: submission (:attr:`Postfix.submission_port`, STARTTLS as on
port 587) and implicit TLS (:attr:`Postfix.smtps_port`, as on port 465). TLS is required on both
and AUTH is offered only after it (``smtpd_tls_auth_only``); the certificate is the Dovecot
instance's, so :attr:`Postfix.ca_file` (the same file as ``Dovecot.ca_file``) trusts both.

AUTH (XOAUTH2, OAUTHBEARER, PLAIN, LOGIN) is Dovecot's: ``smtpd_sasl_type = dovecot`` at the
Dovecot auth listener, so a token is good exactly when Dovecot takes it over IMAP. Only
authenticated clients may send. Mail for :data:`DOMAINS` goes over LMTP into Dovecot, where the
recipient must be one of Dovecot's users: Postfix accepts any address of those domains, and
Dovecot's refusal comes back to the sender as a bounce. Recipients in other domains are refused
at RCPT (``550 5.1.2``). Delivery is asynchronous: :meth:`Postfix.wait_for_delivery` waits for
it, :meth:`Postfix.queue` shows what is still queued, :meth:`Postfix.flush` retries deferred
mail (retries come every second or two anyway).

Each SMTP session gets a fresh smtpd process, so none carries a connection to Dovecot's auth
service across a Dovecot restart. While Dovecot is down, a session ends at the EHLO after TLS
(smtpd: "fatal: no SASL authentication mechanisms"); mail already accepted waits in the queue.

Register the fixture with ``pytest_plugins = ["tests.support.postfix"]`` in a conftest.py:

* ``postfix`` (function): a fresh instance in front of the test's ``dovecot``, which gets the
  users :data:`CUSTOMERS` added (with its own :data:`~tests.support.dovecot.DEFAULT_USERS`,
  alice@ and bob@example.test, they are the addresses mail can be delivered to).

Start-up takes 0.2–0.3 s (most of it Postfix's own check of its queue directories), a stop
20 ms, so each test gets its own server, as with Dovecot: it may stop, kill or misconfigure it,
and its log (:meth:`Postfix.log_text`) holds only its own story.

Skip rule (as for Dovecot): when Postfix is not installed, can't run here or does not start, the
fixture FAILS if ``$CI`` is set or the process runs as root; only a developer machine without
root gets a ``pytest.skip`` (Postfix's master must start as root).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import pty
import pwd
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.dovecot import Dovecot, _accepts, _group_members, _wait_until
from tests.support.servers import SEARCH_PATH, unavailable

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 10.0

# The domains this Postfix delivers into Dovecot: the agents' and the customers'.
DOMAINS: tuple[str, ...] = ("example.test", "example.net")

# Customers' mailboxes the `postfix` fixture adds to its Dovecot (address → password).
CUSTOMERS: Mapping[str, str | None] = {
    "customer@example.net": "customer-password",
    "carol@example.net": "carol-password",
}


# Instances started and not yet stopped, killed when the interpreter exits: Postfix's master
# runs detached and would outlive a test run that ended early.
_running: weakref.WeakSet[Postfix] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for instance in list(_running):
        instance.kill()


class PostfixUnavailable(RuntimeError):
    """Postfix is not installed here or can't run (an environment problem)."""


class PostfixStartError(RuntimeError):
    """Postfix is installed but did not come up (the message carries its log)."""


class PostfixCommandError(RuntimeError):
    """A ``postfix`` or ``postqueue`` command failed."""


class DeliveryTimeout(AssertionError):
    """Mail did not arrive in time (the message carries Postfix's queue and log)."""


@dataclass(frozen=True)
class SmtpPorts:
    """The loopback ports of one instance (kept across :meth:`Postfix.stop` and start)."""

    submission: int  # STARTTLS, like 587
    smtps: int  # implicit TLS, like 465

    @classmethod
    def free(cls) -> SmtpPorts:
        """Ports the kernel calls free right now (held open together so they differ)."""
        with contextlib.ExitStack() as stack:
            numbers = []
            for _ in range(2):
                sock = stack.enter_context(socket.socket())
                sock.bind((HOST, 0))
                numbers.append(int(sock.getsockname()[1]))
        return cls(*numbers)

    def listening(self) -> tuple[int, ...]:
        return (self.submission, self.smtps)


@dataclass(frozen=True)
class _Binaries:
    postfix: str
    postqueue: str
    postconf: str


def find_binaries() -> _Binaries:
    """Paths of ``postfix``, ``postqueue`` and ``postconf``; :class:`PostfixUnavailable` when
    they are missing or can't be used by this process."""
    names = ("postfix", "postqueue", "postconf")
    found = {name: shutil.which(name, path=SEARCH_PATH) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise PostfixUnavailable(
            f"{', '.join(missing)} not found: install postfix "
            "(tests/support/install-system-deps.sh does, as root on Debian)"
        )
    if os.geteuid() != 0:
        raise PostfixUnavailable(
            "Postfix's master must start as root (its daemons then drop to the postfix user)"
        )
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        raise PostfixUnavailable("there is no postfix user (is the package installed?)") from None
    return _Binaries(**{name: str(path) for name, path in found.items()})


@functools.cache
def _meta_directory(postconf: str) -> str:
    """Where the installed Postfix keeps ``postfix-files`` (``/etc/postfix`` on Debian); with
    ``-c DIR`` it would be looked for in DIR."""
    result = subprocess.run(
        [postconf, "-dh", "meta_directory"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=True,
    )
    return result.stdout.strip()


class Postfix:
    """One Postfix instance in its own temporary folder, in front of ``dovecot`` (which must be
    running when mail is sent). Use as a context manager, or call :meth:`start` and
    :meth:`stop` (or :meth:`close`, which also deletes the folder).

    ``settings`` add to or override ``main.cf`` (e.g. ``{"message_size_limit": "100000"}``).
    """

    host = HOST

    def __init__(
        self,
        dovecot: Dovecot,
        *,
        domains: Sequence[str] = DOMAINS,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.binaries = find_binaries()
        self.dovecot = dovecot
        self.domains = tuple(domains)
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.ports = SmtpPorts.free()
        self.folder = Path(tempfile.mkdtemp(prefix="mailgate-postfix-"))
        # mkdtemp makes it 0700; the postfix user must get through to its data directory.
        self.folder.chmod(0o755)
        self.config_dir = self.folder / "conf"
        self.queue_dir = self.folder / "queue"  # root's; Postfix makes its subdirectories
        self.data_dir = self.folder / "data"  # the postfix user's
        self.log_file = self.folder / "postfix.log"
        self.output_file = self.folder / "postfix.out"  # what the postfix command printed
        for folder in (self.config_dir, self.queue_dir, self.data_dir):
            folder.mkdir()
        shutil.chown(self.data_dir, "postfix", "postfix")
        self._master_pid: int | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Postfix:
        """Start the instance; returns once both ports accept connections.

        Raises :class:`PostfixStartError` with the log's tail when it doesn't within
        ``start_timeout``. Should another program take one of the ports before the first start,
        it is retried on fresh ones; later starts keep the ports, as a restarted server would.
        """
        for attempt in range(3):
            try:
                self._start_once()
                break
            except PostfixStartError as exc:
                if self._started or "Address already in use" not in str(exc) or attempt == 2:
                    raise
                self.ports = SmtpPorts.free()
        self._started = True
        return self

    def _start_once(self) -> None:
        if self.running:
            return
        self._write_config()
        self.log_file.touch()
        _running.add(self)
        deadline = time.monotonic() + self.start_timeout
        # Returns once the master has bound its listeners and gone into the background.
        status = self._postfix("start", timeout=self.start_timeout)
        self._master_pid = self._read_master_pid()
        if status != 0:
            what = (
                f"`postfix start` exited with status {status}"
                if status is not None
                else f"`postfix start` did not finish within {self.start_timeout:.0f}s"
            )
            self._fail_start(what)
        pending = list(self.ports.listening())
        while pending:
            if not self.running or time.monotonic() > deadline:
                self._fail_start(
                    "the master died after starting"
                    if not self.running
                    else f"postfix did not listen on {pending} within {self.start_timeout:.0f}s"
                )
            if _accepts(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.01)

    def _fail_start(self, what: str) -> NoReturn:
        # Not waiting for the ports: another program may be the one holding them.
        self._shut_down(wait_for_ports=False)
        # The master and postlogd log by datagram; give the last lines a moment to land.
        time.sleep(0.2)
        raise PostfixStartError(f"{what}\n{self._tails()}")

    def stop(self) -> None:
        """Shut down as an administrator would: SIGTERM to the master, as ``postfix stop``
        sends (which then polls in whole seconds), and the master stops its daemons; open SMTP
        sessions are cut off. Queued mail, and the ports, stay for :meth:`start`."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_until(lambda: not _master_alive(pid) and not _group_members(pid), STOP_TIMEOUT)
        self._shut_down()

    def kill(self) -> None:
        """Die at once, as in a crash: every Postfix process of the instance gets SIGKILL.
        Queued mail and the ports stay for :meth:`start`."""
        self._shut_down()

    def _shut_down(self, *, wait_for_ports: bool = True) -> None:
        pid, self._master_pid = self._master_pid, None
        _running.discard(self)
        if pid is not None and (_master_alive(pid) or _group_members(pid)):
            # The master leads its own session; its daemons are in its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_until(lambda: not _master_alive(pid) and not _group_members(pid), STOP_TIMEOUT)
        # Gone for good: a pid file left behind would name some later process.
        self._pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + STOP_TIMEOUT
        while wait_for_ports and any(_accepts(port) for port in self.ports.listening()):
            if time.monotonic() > deadline:
                raise PostfixStartError(f"postfix's ports still accept after stop\n{self._tails()}")
            time.sleep(0.01)

    def restart(self, *, crash: bool = False) -> Postfix:
        """Stop (or with ``crash``, :meth:`kill`) and start again on the same ports with the
        same queue."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Stop at once and delete the folder."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._master_pid is not None and _master_alive(self._master_pid)

    @property
    def pid(self) -> int | None:
        """The master process's pid while running."""
        return self._master_pid if self.running else None

    # -- for clients -------------------------------------------------------------------------

    @property
    def submission_port(self) -> int:
        """SMTP with STARTTLS (required before AUTH and MAIL), like port 587."""
        return self.ports.submission

    @property
    def smtps_port(self) -> int:
        """SMTP over implicit TLS, like port 465."""
        return self.ports.smtps

    @property
    def ca_file(self) -> Path:
        """The CA that signed the certificate (Dovecot's: one file trusts both servers)."""
        return self.dovecot.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this instance's certificate (for 127.0.0.1 or
        localhost)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- mail --------------------------------------------------------------------------------

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages delivered to a Dovecot user so far, oldest first, as IMAP serves
        them. On top of what was sent: ``Return-Path`` and two ``Received`` headers, and
        ``Delivered-To`` when the message went to that one recipient (Postfix hands Dovecot
        all recipients of a message in one LMTP transaction)."""
        return self.dovecot.messages(user, folder)

    def wait_for_delivery(
        self,
        user: str,
        count: int = 1,
        timeout: float = DELIVERY_TIMEOUT,
        folder: str = "INBOX",
    ) -> list[bytes]:
        """Wait until the user's folder holds at least ``count`` messages; returns them all
        (see :meth:`messages`). :class:`DeliveryTimeout`, with the queue and the log, when
        they don't arrive within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.dovecot.mailbox_status(user, folder)["messages"]
            if found >= count:
                return self.messages(user, folder)
            if time.monotonic() > deadline:
                raise DeliveryTimeout(
                    f"{user} has {found} of {count} message(s) in {folder} after "
                    f"{timeout:g}s\nqueue: {self.queue()}\n{self._tails()}"
                )
            time.sleep(0.02)

    def queue(self) -> list[dict[str, Any]]:
        """The mail Postfix still holds (``postqueue -j``: ``queue_name``, ``queue_id``,
        ``sender``, ``recipients`` with ``delay_reason`` …); empty once all is delivered or
        bounced."""
        output = self._postqueue("-j")
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def wait_for_empty_queue(self, timeout: float = DELIVERY_TIMEOUT) -> None:
        """Wait until Postfix has delivered or bounced everything it took."""
        deadline = time.monotonic() + timeout
        while queued := self.queue():
            if time.monotonic() > deadline:
                raise DeliveryTimeout(
                    f"the queue is not empty after {timeout:g}s: {queued}\n{self._tails()}"
                )
            time.sleep(0.02)

    def flush(self) -> None:
        """Try all deferred mail now (``postqueue -f``), e.g. once Dovecot is back."""
        self._postqueue("-f")

    # -- logs --------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything Postfix has logged so far (smtpd's AUTH failures, each delivery's
        status …). Lines arrive through postlogd, a few milliseconds after the event."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of :meth:`log_text`."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _tails(self, lines: int = 40) -> str:
        parts = []
        for path in (self.output_file, self.log_file):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    # -- commands ----------------------------------------------------------------------------

    def _postfix(self, command: str, *, timeout: float) -> int | None:
        """Run ``postfix -c DIR COMMAND``; its exit status, or None when it did not finish
        within ``timeout`` seconds (it is killed then). What it prints is appended to
        :attr:`output_file`: over a pseudo-terminal, because Postfix prints its errors (a bad
        ``main.cf`` setting, say) only to a terminal, and there is no syslog to take them."""
        leader, follower = pty.openpty()
        try:
            process = subprocess.Popen(
                [self.binaries.postfix, "-c", str(self.config_dir), command],
                stdin=subprocess.DEVNULL,
                stdout=follower,
                stderr=follower,
                start_new_session=True,
            )
        finally:
            os.close(follower)
        output = bytearray()
        deadline = time.monotonic() + timeout
        try:
            # Read while it runs (a full terminal buffer would stall it); the daemon it leaves
            # behind may hold the terminal open, so stop once it has exited and been drained.
            while True:
                exited = process.poll() is not None
                ready, _, _ = select.select([leader], [], [], 0 if exited else 0.02)
                chunk = _read_available(leader) if ready else b""
                output += chunk
                if exited and not chunk:
                    return process.returncode
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    output += f"(killed after {timeout:g}s)\n".encode()
                    return None
        finally:
            os.close(leader)
            with open(self.output_file, "ab") as file:
                file.write(bytes(output).replace(b"\r\n", b"\n"))

    def _postqueue(self, *args: str) -> str:
        result = subprocess.run(
            [self.binaries.postqueue, "-c", str(self.config_dir), *args],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise PostfixCommandError(
                f"`postqueue {' '.join(args)}` exited with {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()}\n{self._tails()}"
            )
        return result.stdout.decode(errors="replace")

    @property
    def _pid_file(self) -> Path:
        return self.queue_dir / "pid" / "master.pid"

    def _read_master_pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- files -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        settings = {
            **_main_settings(self),
            **self.settings,
        }
        main, master = self.config_dir / "main.cf", self.config_dir / "master.cf"
        main.write_text(
            "# Written by tests/support/postfix.py: a standalone instance.\n"
            + "".join(f"{name} = {value}\n" for name, value in settings.items())
        )
        master.write_text(_master_services(self.ports))
        # The postfix command waits until its configuration files are a second or two old
        # (up to 2 s otherwise); they are complete, so they may look older.
        past = time.time() - 10
        for path in (main, master):
            os.utime(path, (past, past))


def _main_settings(postfix: Postfix) -> dict[str, str]:
    dovecot = postfix.dovecot
    domains = ", ".join(postfix.domains)
    return {
        "compatibility_level": "3.6",
        # The instance's own state, in its folder; only postfix-files is the installed one.
        "queue_directory": str(postfix.queue_dir),
        "data_directory": str(postfix.data_dir),
        "meta_directory": _meta_directory(postfix.binaries.postconf),
        # No syslog here: postlogd writes the log, which must live below a listed prefix.
        "maillog_file": str(postfix.log_file),
        "maillog_file_prefixes": str(postfix.folder),
        "myhostname": "localhost",
        "inet_interfaces": HOST,
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        # Nothing is local: every test domain is a virtual mailbox domain served by Dovecot.
        "mydestination": "",
        "local_recipient_maps": "",
        "local_transport": "error:5.1.1 no local delivery in the test Postfix",
        "alias_maps": "",
        "alias_database": "",
        "virtual_mailbox_domains": domains,
        "virtual_transport": f"lmtp:inet:{HOST}:{dovecot.lmtp_port}",
        # Other domains: refused at RCPT (smtpd knows the error transport), no DNS to wait on.
        "relayhost": "",
        "default_transport": f"error:5.1.2 the test Postfix delivers only to {domains}",
        # Deferred mail (Dovecot down) is retried within seconds, not minutes.
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        # Submission: TLS first, then AUTH through Dovecot, then mail to anyone.
        "smtpd_tls_security_level": "encrypt",
        "smtpd_tls_cert_file": str(dovecot.cert_file),
        "smtpd_tls_key_file": str(dovecot.key_file),
        "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": f"inet:{HOST}:{dovecot.auth_port}",
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
        # With Dovecot's auth down, smtpd dies at the EHLO after STARTTLS ("no SASL
        # authentication mechanisms") and the master would hold off new ones for a minute.
        "service_throttle_time": "1s",
        "biff": "no",
        "append_dot_mydomain": "no",
    }


def _master_services(ports: SmtpPorts) -> str:
    # No chroot: the instance's files are outside any chroot Debian would set up. One session
    # per smtpd process (max_use): a reused one keeps its connection to Dovecot's auth service,
    # and after a Dovecot restart its next AUTH would fail once with 454 "Connection lost to
    # authentication server" — whichever process a client happens to get. ~35 ms a connection.
    smtpd = "inet  n       -       n       -       -       smtpd\n  -o max_use=1"
    return f"""\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{HOST}:{ports.submission} {smtpd}
  -o syslog_name=postfix/submission
{HOST}:{ports.smtps} {smtpd}
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _read_available(fd: int) -> bytes:
    """What a terminal has to read now; b"" at its end (Linux says EIO once nobody holds the
    other side)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _master_alive(pid: int) -> bool:
    """Whether Postfix's master runs as ``pid``: not a zombie (the detached master is nobody's
    child here, and may stay one), nor another program that got the number since."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return name == "master" and stat[stat.rindex(")") + 2 :].split()[0] != "Z"


# --------------------------------------------------------------------------------------------
# pytest fixture


def _unavailable(reason: str) -> NoReturn:
    unavailable("Postfix", reason)


def start_postfix(dovecot: Dovecot, **options: Any) -> Postfix:
    """A started :class:`Postfix` in front of ``dovecot``, or the skip rule applied."""
    try:
        instance = Postfix(dovecot, **options)
    except PostfixUnavailable as exc:
        _unavailable(str(exc))
    try:
        return instance.start()
    except PostfixStartError as exc:
        instance.close()
        _unavailable(str(exc))


@pytest.fixture
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """A fresh Postfix for the test, checking tokens with and delivering into ``dovecot``,
    which gets the users :data:`CUSTOMERS` added."""
    dovecot.add_users(CUSTOMERS)
    instance = start_postfix(dovecot)
    try:
        yield instance
    finally:
        instance.close()


__all__ = [
    "CUSTOMERS",
    "DOMAINS",
    "DeliveryTimeout",
    "Postfix",
    "PostfixCommandError",
    "PostfixStartError",
    "PostfixUnavailable",
    "SmtpPorts",
    "find_binaries",
    "postfix",
    "start_postfix",
]

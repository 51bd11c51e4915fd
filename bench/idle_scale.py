"""Benchmark: a thousand IDLE mailboxes in one `mailgate worker` (or shared by several).

Starts a real Dovecot on loopback with its limits raised for N sessions (as the test suite
starts it: tests/support/dovecot.py), N users with a password, a fresh MAILGATE_HOME on SQLite
(or on a PostgreSQL started as tests/support/postgres.py starts it), N password mailboxes over
IMAPS with IDLE configured by one `mailgate mailbox import`, and the real `mailgate worker`
command(s), each serving its metrics. Then it measures:

- the time from the workers' start until Dovecot has every session in IDLE (its imap processes'
  titles), and until every status says idle (written before a mailbox's first round);
  Dovecot's `doveadm who` counts the sessions, each worker's `mailgate_idle_connections` gauge
  its own;
- each worker's memory (RSS, and PSS: its share of pages shared with other processes) and its
  parsing processes' separately; a worker with no mailbox, for what a mailbox adds;
- CPU (% of one core) over `--idle-seconds` with nothing arriving;
- a steady stream of deliveries (LMTP, as an MTA delivers) spread at random over the
  mailboxes, `--rate` a second for `--stream-seconds`: delivered → committed p50/p99 (the
  receipt seen in the database, polled every 50 ms) and CPU meanwhile;
- the floor: the memory of N bare TLS IDLE sessions (mailgate's IMAP client alone, no
  database, no loop per mailbox) in a fresh interpreter.

It prints the figures beside the goals (< 500 MB RSS, idle CPU < 2 % of a core, p50 ≤ 1 s).
With `--workers 3 --database postgresql` it also prints how the mailboxes are shared. As root
it raises fs.inotify.max_user_instances for the run (Dovecot's imap processes each want one to
hear of new mail at once) and puts it back.

    .venv/bin/python bench/idle_scale.py [--mailboxes 1000] [--workers 1]
        [--database sqlite|postgresql] [--rate 5] [--stream-seconds 60] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from tests.support.dovecot import Dovecot
from tests.support.postgres import Postgres

from mailgate.mail.imap import ImapClient

PASSWORD = "bench-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def user(number: int) -> str:
    return f"box{number:04d}@bench.test"


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def raise_inotify_limit(count: int) -> tuple[int, int] | None:
    """Dovecot's imap processes (one per session, all one system user) each want an inotify
    instance to hear of new mail at once; past the limit (128 by default) they look every
    `mailbox_idle_check_interval`. As root, raise it for the run: (old, new), or None."""
    try:
        old = int(INOTIFY_INSTANCES.read_text())
        if old < count + 200 and os.geteuid() == 0:
            INOTIFY_INSTANCES.write_text(str(count + 200))
            return old, count + 200
    except OSError:
        pass
    return None


def raise_fd_limit() -> int:
    """A thousand sessions need more than the usual 1,024 descriptors: soft limit to hard."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- processes -----------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS of a process, in MB."""
    rss = pss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu_percent(pids: list[int], seconds: float) -> dict[int, float]:
    """% of one core each process used over the next `seconds`."""
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    return {pid: 100 * (cpu_seconds(pid) - before[pid]) / seconds for pid in pids}


def mailgate(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mailgate", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"mailgate {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


# -- the database, read from outside ---------------------------------------------------------


class Watch:
    """What the workers wrote, read with a plain engine of the bench's own."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def statuses(self) -> Counter[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT status, count(*) FROM mailboxes GROUP BY 1"))
            return Counter({str(status): int(count) for status, count in rows})

    def owners(self) -> Counter[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT lease_owner, count(*) FROM mailboxes GROUP BY 1")
            )
            return Counter({str(owner): int(count) for owner, count in rows})

    def receipts_after(self, last_id: int) -> list[tuple[int, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, message_id FROM receipts WHERE id > :last ORDER BY id"),
                {"last": last_id},
            )
            return [(int(rid), str(mid)) for rid, mid in rows]


# -- the stream of mail ----------------------------------------------------------------------------


def message(token: str, recipient: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = recipient
    mail["Subject"] = f"bench {token}"
    mail["Message-ID"] = f"<{token}@bench.test>"
    mail.set_content("A question about my order.\n" + "x" * 1500)
    return bytes(mail).replace(b"\n", b"\r\n")


def stream(
    dovecot: Dovecot, mailboxes: int, rate: float, seconds: float, sent: dict[str, float]
) -> None:
    """Deliver `rate` messages a second for `seconds`, each to a mailbox drawn at random;
    `sent[Message-ID]` = when Dovecot had stored it (LMTP's answer)."""
    rng = random.Random(14)
    lmtp = smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=30)
    try:
        start = time.monotonic()
        for n in range(int(rate * seconds)):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            token = f"t{n:05d}.{rng.randrange(10**9)}"
            recipient = user(rng.randrange(mailboxes))
            lmtp.sendmail("customer@example.net", [recipient], message(token, recipient))
            sent[f"{token}@bench.test"] = time.monotonic()
    finally:
        lmtp.quit()


def committed_latencies(
    watch: Watch, sent: dict[str, float], feeder: threading.Thread, expected: int, patience: float
) -> tuple[list[float], int]:
    """Latency of every delivered message (receipt seen − delivered), polling every 50 ms until
    all `expected` are in or `patience` seconds after the feeder ends; and how many are missing."""
    seen: dict[str, float] = {}
    last_id = 0
    deadline = None
    while len(seen) < expected:
        for rid, message_id in watch.receipts_after(last_id):
            last_id = rid
            seen.setdefault(message_id.strip("<>"), time.monotonic())
        if not feeder.is_alive():
            deadline = deadline or time.monotonic() + patience
            if time.monotonic() > deadline:
                break
        time.sleep(0.05)
    latencies = [seen[m] - at for m, at in sent.items() if m in seen]
    return latencies, expected - len(latencies)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


# -- the floor: bare TLS IDLE sessions -------------------------------------------------------------


async def bare_sessions(port: int, ca_file: str, count: int) -> None:
    """`count` IMAPS sessions IDLEing in one loop with nothing else: print RSS before/after."""
    import ssl

    tls = ssl.create_default_context(cafile=ca_file)
    before = memory_mb(os.getpid())[0]
    clients: list[ImapClient] = []
    gate = asyncio.Semaphore(20)

    async def one(number: int) -> None:
        async with gate:
            client = await ImapClient.open_connected("127.0.0.1", port, security="ssl", tls=tls)
            await client.login(user(number), PASSWORD)
            await client.select("INBOX")
            await client._send(f"{client._next_tag()} IDLE\r\n".encode())
            await client._read_response()
            clients.append(client)

    await asyncio.gather(*(one(n) for n in range(count)))
    await asyncio.sleep(1)
    print(json.dumps({"before": before, "after": memory_mb(os.getpid())[0]}))
    for client in clients:
        client.connection.writer.close()


def floor_memory(dovecot: Dovecot, count: int) -> float:
    """MB a bare session costs, measured in a fresh interpreter."""
    bare = ["--bare", str(dovecot.imaps_port), str(dovecot.ca_file), "--mailboxes", str(count)]
    result = subprocess.run(
        [sys.executable, __file__, *bare],
        capture_output=True,
        text=True,
        timeout=300,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return float(figures["after"] - figures["before"])


# -- the run ---------------------------------------------------------------------------------------


def configure(env: dict[str, str], home: Path, dovecot: Dovecot, count: int) -> float:
    """The project and N mailboxes, in one `mailbox import`; its seconds."""
    mailgate(env, "project", "add", "HELP", "--name", "Help desk")
    password_file = home / "bench-password"
    password_file.write_text(PASSWORD)
    entries = [
        {
            "name": f"box{n:04d}",
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": dovecot.imaps_port,
            "security": "ssl",
            "username": user(n),
            "password_file": str(password_file),
            "ca_file": str(dovecot.ca_file),
            "project": "HELP",
            "idle": True,
        }
        for n in range(count)
    ]
    import_file = home / "mailboxes.json"
    import_file.write_text(json.dumps(entries))
    started = time.monotonic()
    mailgate(env, "mailbox", "import", str(import_file))
    return time.monotonic() - started


@dataclass
class BenchWorker:
    """One `mailgate worker` process, serving its metrics on a port of its own."""

    process: subprocess.Popen[bytes]
    metrics_port: int
    pid: int = 0
    stopped_after: float = 0.0

    def __post_init__(self) -> None:
        self.pid = self.process.pid

    def idle_connections(self) -> int | None:
        """The worker's `mailgate_idle_connections` gauge (None: no answer). Slow while the
        worker is busy: the page also reads the database."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=20
            ) as answer:
                text = answer.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("mailgate_idle_connections "):
                return int(float(line.split()[1]))
        return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_workers(env: dict[str, str], home: Path, count: int) -> list[BenchWorker]:
    workers = []
    for number in range(count):
        port = free_port()
        with open(home / f"worker-{number}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mailgate", "worker", "--name", f"bench-{number}"],
                env={**env, "MAILGATE_METRICS_ADDRESS": f"127.0.0.1:{port}"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        workers.append(BenchWorker(process, port))
    return workers


def stop_workers(workers: list[BenchWorker]) -> None:
    """SIGTERM each; note the seconds each took to exit."""
    started = time.monotonic()
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.stopped_after = time.monotonic() - started


def baseline_rss() -> float:
    """RSS (MB) of a worker with no mailbox, settled: what the mailboxes add is the rest."""
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-empty-") as tmp:
        env = {**os.environ, "MAILGATE_HOME": tmp, "MAILGATE_BASE_URL": "https://bench.test"}
        env.pop("MAILGATE_DATABASE_URL", None)
        workers = start_workers(env, Path(tmp), 1)
        time.sleep(10)
        rss = memory_mb(workers[0].pid)[0]
        stop_workers(workers)
    return rss


@dataclass
class Started:
    """When the mailboxes were IDLE, seen two ways, in seconds from the workers' start."""

    status: float | None = None  # every mailbox's status says idle (written before its 1st IDLE)
    server: float | None = None  # Dovecot has every session in IDLE


def wait_until_idle(dovecot: Dovecot, watch: Watch, count: int, timeout: float) -> Started:
    """Wait for every session to be in IDLE at Dovecot (its imap processes' titles say so),
    showing the progress every 5 s."""
    started = time.monotonic()
    seen = Started()
    shown = 0.0
    while time.monotonic() - started < timeout:
        statuses = watch.statuses()
        in_idle = dovecot.sessions_in_idle()
        now = time.monotonic() - started
        if seen.status is None and statuses["idle"] == count:
            seen.status = now
        if in_idle == count:
            seen.server = now
            return seen
        if now - shown >= 5:
            shown = now
            print(f"  {now:5.1f} s: statuses {dict(statuses)}, in IDLE at Dovecot {in_idle}")
        time.sleep(0.2)
    print(f"  not all in IDLE after {timeout:.0f} s: {dovecot.sessions_in_idle()}")
    return seen


def sessions_at_dovecot(dovecot: Dovecot) -> int:
    """IMAP sessions Dovecot counts (`doveadm who`: a line per user)."""
    lines = dovecot.doveadm("who").splitlines()[1:]
    return sum(int(line.split()[1]) for line in lines if " imap " in f" {line} ")


@dataclass
class Figures:
    started: Started = field(default_factory=Started)
    sessions: int = 0
    owners: Counter[str] = field(default_factory=Counter)
    gauges: list[int | None] = field(default_factory=list)
    start_cpu: dict[int, float] = field(default_factory=dict)
    idle_cpu: dict[int, float] = field(default_factory=dict)
    busy_cpu: dict[int, float] = field(default_factory=dict)
    memory: dict[int, tuple[float, float]] = field(default_factory=dict)
    memory_after: dict[int, tuple[float, float]] = field(default_factory=dict)
    parsers: dict[int, list[int]] = field(default_factory=dict)
    parser_memory: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    baseline: float | None = None
    floor: float | None = None


def measure(
    args: argparse.Namespace, dovecot: Dovecot, watch: Watch, workers: list[BenchWorker]
) -> Figures:
    count = args.mailboxes
    pids = [w.pid for w in workers]
    figures = Figures(started=wait_until_idle(dovecot, watch, count, args.connect_timeout))
    # CPU each worker used from its start until then: the start's cost, whatever the load.
    figures.start_cpu = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(2)  # the last first rounds end
    figures.sessions = sessions_at_dovecot(dovecot)
    figures.owners = watch.owners()
    figures.gauges = [w.idle_connections() for w in workers]
    figures.parsers = {pid: children_of(pid) for pid in pids}
    watched = pids + [c for cs in figures.parsers.values() for c in cs]
    figures.idle_cpu = cpu_percent(watched, args.idle_seconds)
    figures.memory = {pid: memory_mb(pid) for pid in pids}
    sent: dict[str, float] = {}
    feeder = threading.Thread(
        target=stream, args=(dovecot, count, args.rate, args.stream_seconds, sent)
    )
    before = {pid: cpu_seconds(pid) for pid in pids}
    streamed = time.monotonic()
    feeder.start()
    expected = int(args.rate * args.stream_seconds)
    figures.latencies, figures.missing = committed_latencies(watch, sent, feeder, expected, 60)
    feeder.join()
    took = time.monotonic() - streamed
    figures.busy_cpu = {pid: 100 * (cpu_seconds(pid) - before[pid]) / took for pid in pids}
    figures.parsers = {pid: children_of(pid) for pid in pids}
    figures.memory_after = {pid: memory_mb(pid) for pid in pids}
    figures.parser_memory = {pid: [memory_mb(c) for c in cs] for pid, cs in figures.parsers.items()}
    return figures


def run(args: argparse.Namespace) -> None:
    count = args.mailboxes
    limit = raise_fd_limit()
    print(f"{count} mailboxes, {args.workers} worker(s) on {args.database}; fd limit {limit}")
    inotify = raise_inotify_limit(count)
    if inotify:
        print(f"fs.inotify.max_user_instances {inotify[0]} → {inotify[1]} for the run")
    postgres = Postgres().start() if args.database == "postgresql" else None
    users: dict[str, str | None] = {user(n): PASSWORD for n in range(count)}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="mailgate-bench-") as tmp,
            Dovecot(users=users, max_connections=count + 50) as dovecot,
        ):
            home = Path(tmp)
            env = {
                **os.environ,
                "MAILGATE_HOME": str(home),
                "MAILGATE_BASE_URL": "https://bench.test",
            }
            url = f"sqlite:///{home / 'mailgate.db'}"
            if postgres is not None:
                url = env["MAILGATE_DATABASE_URL"] = postgres.new_database()
            imported = configure(env, home, dovecot, count)
            print(f"mailbox import of {count}: {imported:.1f} s")
            watch = Watch(url)
            workers = start_workers(env, home, args.workers)
            try:
                figures = measure(args, dovecot, watch, workers)
            finally:
                stop_workers(workers)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for log in home.glob("worker-*.log"):
                        log.replace(args.keep / log.name)
            if not args.no_floor:
                figures.floor = floor_memory(dovecot, count)
                figures.baseline = baseline_rss()
    finally:
        if postgres is not None:
            postgres.stop()
        if inotify:
            INOTIFY_INSTANCES.write_text(str(inotify[0]))
    report(args, workers, figures)


def report(args: argparse.Namespace, workers: list[BenchWorker], figures: Figures) -> None:
    count = args.mailboxes
    started = figures.started
    rows: list[tuple[str, str, str]] = [
        ("every session in IDLE at Dovecot", seconds(started.server), "< 60 s"),
        ("every mailbox's status idle (database)", seconds(started.status), ""),
        ("IMAP sessions at Dovecot (doveadm who)", f"{figures.sessions}", f"{count}"),
    ]
    several = len(workers) > 1
    for number, worker in enumerate(workers):
        pid = worker.pid
        name = f"worker {number}" if several else "worker"
        rss, pss = figures.memory[pid]
        rows.append(
            (
                f"{name}: CPU time from its start until all were in IDLE",
                f"{figures.start_cpu[pid]:.1f} s",
                "",
            )
        )
        rows.append(
            (
                f"{name}: RSS in IDLE / after the stream",
                f"{rss:.0f} / {figures.memory_after[pid][0]:.0f} MB",
                "< 500 MB",
            )
        )
        rows.append((f"{name}: PSS in IDLE", f"{pss:.0f} MB", ""))
        children = figures.parser_memory.get(pid, [])
        if children:
            listed = ", ".join(f"{r:.0f}" for r, _ in children)
            rows.append((f"{name}: parsing processes' RSS", f"{listed} MB", "(shared)"))
        rows.append(
            (
                f"{name}: CPU in IDLE ({args.idle_seconds:.0f} s)",
                f"{figures.idle_cpu[pid]:.2f} % of a core",
                "< 2 %",
            )
        )
        sandbox = sum(figures.idle_cpu.get(c, 0.0) for c in figures.parsers.get(pid, []))
        rows.append((f"{name}: parsing processes' CPU in IDLE", f"{sandbox:.2f} %", ""))
        rows.append((f"{name}: CPU during the stream", f"{figures.busy_cpu[pid]:.1f} %", ""))
        rows.append((f"{name}: exit after SIGTERM", f"{worker.stopped_after:.1f} s", ""))
    if several:
        held = ", ".join(str(n) for owner, n in sorted(figures.owners.items()) if owner != "None")
        rows.append(("mailboxes held per worker (leases)", held, "even"))
    gauges = ", ".join(map(str, figures.gauges))
    rows.append(("in IDLE, as each worker's gauge says", gauges, "even" if several else ""))
    latencies = figures.latencies
    rows += [
        (
            f"delivered → committed p50 ({len(latencies)} msgs, {args.rate:g}/s)",
            f"{percentile(latencies, 0.5) * 1000:.0f} ms",
            "≤ 1 s",
        ),
        ("delivered → committed p99", f"{percentile(latencies, 0.99) * 1000:.0f} ms", ""),
        ("messages not committed within 60 s", f"{figures.missing}", "0"),
    ]
    if figures.baseline is not None and figures.floor is not None and not several:
        rss = figures.memory[workers[0].pid][0]
        per = (rss - figures.baseline) * 1024 / count
        rows.append(("worker with no mailbox: RSS", f"{figures.baseline:.0f} MB", ""))
        rows.append(("RSS per mailbox (worker − no mailbox) / N", f"{per:.0f} KB", ""))
        floor = f"{figures.floor:.0f} MB ({figures.floor * 1024 / count:.0f} KB each)"
        rows.append(("floor: N bare TLS IDLE sessions in one loop", floor, ""))
    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'figure':{width}} | value | goal |")
    print(f"| {'-' * width} | ---: | --- |")
    for figure, value, goal in rows:
        print(f"| {figure:{width}} | {value} | {goal} |")


def seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=5.0, help="deliveries a second")
    parser.add_argument("--stream-seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument("--no-floor", action="store_true", help="skip the bare sessions")
    parser.add_argument("--keep", type=Path, help="copy the workers' logs here")
    parser.add_argument("--bare", nargs=2, metavar=("PORT", "CA_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        raise_fd_limit()
        asyncio.run(bare_sessions(int(args.bare[0]), args.bare[1], args.mailboxes))
        return
    run(args)


if __name__ == "__main__":
    main()

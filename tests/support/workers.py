"""`mailgate worker` processes for the reliability tests: started as a deployment starts them,
killed with SIGKILL (a crash, an OOM kill, a power cut of one host) and started again, and
finally stopped with SIGTERM as an init system stops them.

Each worker is the real command, `python -m mailgate worker --name NAME`, in a session of its
own (a Ctrl-C in the terminal is pytest's), with MAILGATE_HOME and MAILGATE_DATABASE_URL of the
test. Every start of a worker appends its stderr (the logs) to `LOGS/NAME.log`, each start
headed by a line, so a failed test can show what each incarnation said (:meth:`Workers.tails`).

Only the worker's own process is killed: its parsing processes die with it
(`mailgate/sandbox/worker.py` asks the kernel for that), as they would in a real crash.

Use as a context manager; whatever is still running at the end is killed::

    with Workers(env, tmp_path / "logs", count=3) as workers:
        workers.kill(0)
        workers.start(0)
        assert workers.stop() == [0, 0, 0]
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

STOP_TIMEOUT = 30.0  # SIGTERM finishes the message in hand and lets the leases go
READY_TIMEOUT = 60.0  # for a worker to start (imports, the database) on a busy machine
START = "--- start "  # heads each start's part of the log
READY = '"supervisor started"'  # the supervisor's first log line (JSON: its event)

_running: weakref.WeakSet[Worker] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for worker in list(_running):
        worker.kill()


class Worker:
    """One `mailgate worker`, started again under the same name after each kill."""

    def __init__(self, name: str, env: Mapping[str, str], log_file: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_file = log_file
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"worker {self.name} is running already")
        self.starts += 1
        with open(self.log_file, "ab") as log:
            log.write(f"{START}{self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mailgate", "worker", "--name", self.name],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        _running.add(self)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no lease released, a transaction in flight rolled back by the
        database when the connection drops."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open(self.log_file, "ab") as log:
            log.write(f"--- killed at {time.time():.3f}\n".encode())

    def terminate(self) -> None:
        """SIGTERM, once (a second one, arriving while the worker exits, would find Python's
        default handler again and end it with -15)."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT, *, signalled: bool = False) -> int | None:
        """SIGTERM (unless `signalled` already) and wait; the exit status (None if it was not
        running). A worker that does not stop within `timeout` is killed (-9)."""
        if not signalled:
            self.terminate()
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return None
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def ready(self) -> bool:
        """Whether the worker's supervisor started since its last start (from here on, SIGTERM
        stops it gracefully; before, the signal ends it at once, holding nothing yet). Needs
        MAILGATE_LOG_LEVEL=info, which :func:`worker_env` sets."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return False
        return READY in text.rsplit(START, 1)[-1]

    def owns(self, lease_owner: str) -> bool:
        """Whether a lease owner names this incarnation: `NAME:HOST:PID:…`, as
        `mailgate worker --name` makes it."""
        return (
            self.running
            and lease_owner.startswith(f"{self.name}:")
            and (f":{self.pid}:" in lease_owner)
        )

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text)


class Workers:
    """`count` workers named `worker-0` … sharing the test's home and database."""

    def __init__(self, env: Mapping[str, str], logs: Path, *, count: int) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.workers = [
            Worker(f"worker-{number}", env, logs / f"worker-{number}.log")
            for number in range(count)
        ]
        self.kills = 0

    def __enter__(self) -> Workers:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.kill()

    def __len__(self) -> int:
        return len(self.workers)

    def kill(self, number: int) -> None:
        self.workers[number].kill()
        self.kills += 1

    def start(self, number: int) -> None:
        self.workers[number].start()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every running worker's supervisor has started."""
        deadline = time.monotonic() + timeout
        while not all(w.ready() for w in self.workers if w.running):
            if time.monotonic() > deadline:
                late = [w.name for w in self.workers if w.running and not w.ready()]
                raise TimeoutError(f"{', '.join(late)} not started within {timeout:g} s")
            time.sleep(0.1)

    def stop(self) -> list[int | None]:
        """Stop every worker with SIGTERM (all signalled first, then waited for), once each
        has started; their exit statuses."""
        self.wait_ready()
        for worker in self.workers:
            worker.terminate()
        return [worker.stop(signalled=True) for worker in self.workers]

    def tails(self, lines: int = 30) -> str:
        """The end of each worker's log, for a failure's message."""
        return "\n".join(f"=== {w.name} ===\n{w.tail(lines)}" for w in self.workers)


def worker_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker of the test: its home (the key file) and database."""
    env = {
        **os.environ,
        "MAILGATE_HOME": str(home),
        "MAILGATE_DATABASE_URL": database_url,
        "MAILGATE_LOG_LEVEL": "info",  # the log says when the worker is ready, and what it did
        **extra,
    }
    env.pop("MAILGATE_SECRET_KEYS", None)  # the key file in the home, as the test's own context
    return env


__all__ = ["Worker", "Workers", "worker_env"]

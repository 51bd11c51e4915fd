"""Parse functions for the parsing processes of the tests (`ParserPool(parse="tests.support.parsing:…")`):
the real parser, wrapped to record each call, to hang, to eat memory, to crash, or to check that
the database's write lock is free while a message is parsed.

They run in the parsing process, so they talk back through files named by environment
variables the test sets (the parsing process inherits the environment):
MAILGATE_TEST_PARSE_LOG — a line per call; MAILGATE_TEST_DB — the SQLite file to probe;
MAILGATE_TEST_START_SECONDS — how long a parsing process takes to start.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import Any, NoReturn

from mailgate.inbound.parse import parse_message

POISON = b"X-Test-Poison:"

# A parsing process that loads these functions starts this much later: a machine under load
# (MAILGATE_TEST_START_SECONDS). The tests' own process imported this module before any test set
# it, so only parsing processes wait.
time.sleep(float(os.environ.get("MAILGATE_TEST_START_SECONDS", "0")))


def _record(line: str) -> None:
    path = os.environ.get("MAILGATE_TEST_PARSE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def recorded(raw: bytes) -> Any:
    """The real parser; each call recorded with the message's Message-ID line."""
    head = raw.split(b"\n\n", 1)[0]
    ids = [line for line in head.splitlines() if line.lower().startswith(b"message-id:")]
    _record(ids[0].decode("ascii", "replace").strip() if ids else "(no id)")
    return parse_message(raw)


def poison(raw: bytes) -> Any:
    """A message carrying the X-Test-Poison header does what its value says to the parsing
    process (hang, memory, crash, raise, huge-result); others parse normally. Every call is
    recorded."""
    if POISON not in raw.split(b"\n\n", 1)[0]:
        return recorded(raw)
    recorded(raw)
    how = raw.split(POISON, 1)[1].split(b"\n", 1)[0].strip()
    if how == b"hang":
        time.sleep(3600)
    elif how == b"memory":
        hog = []
        while True:
            hog.append(bytearray(64 * 1024 * 1024))
    elif how == b"crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == b"raise":
        raise ValueError("a bug in the parser")
    elif how == b"huge-result":
        return _TooLargeForTheParent()
    return parse_message(raw)


def _out_of_memory() -> NoReturn:
    raise MemoryError


class _TooLargeForTheParent:
    """A parse result the parent has no memory to read: unpickling it there raises MemoryError
    (as a result of many gigabytes would), in the parent, not in the parsing process."""

    def __reduce__(self) -> tuple[Callable[[], NoReturn], tuple[()]]:
        return _out_of_memory, ()


def lock_probe(raw: bytes) -> Any:
    """Records whether another process could take the database's write lock right now (it
    must: no transaction may wait on a parse), then parses."""
    path = os.environ["MAILGATE_TEST_DB"]
    # One probe at a time: two parsing processes probing at once would find each other's lock.
    with open(path + ".probe", "w") as probing:
        fcntl.flock(probing, fcntl.LOCK_EX)
        connection = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            _record("free")
        except sqlite3.OperationalError as exc:
            _record(f"held: {exc}")
        finally:
            connection.close()
    return parse_message(raw)

"""A parsing process: reads messages from its standard input, parses each, writes the result.

Run by `pool.ParserPool` as `python -m mailgate.sandbox.worker`, never by hand. Mail is
written by strangers, so the parse runs here, in a process of its own with a memory limit,
where the parent can kill it at its deadline: a hostile message costs this process, never the
one that holds the database or the mailbox connections.

Frames on both pipes: an 8-byte big-endian length, then that many bytes, a pickled
`(kind, value)` on the way out. First ("ready", None) once started — or ("broken", detail) or
("memory", detail) when it cannot work, and it ends. Then chunks: in, a count (8 bytes) and that
many raw messages, each a frame; out, ("received", None) once the chunk is read whole (a process
that ends before this did not end because of a message), then for each message in turn
("ok", InboundMessage), ("memory", detail) just before the process ends (a parse that ran out
of memory leaves a fragmented heap: a new process is cleaner), or ("error", detail) when the
parse function raised (it is total; a bug otherwise).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct(">Q")
_ROOM = 16 * 1024 * 1024


def _die_with_parent() -> None:
    """End when the process that started this one ends (Linux), so a killed `mailgate` leaves
    no parsing process behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_memory(megabytes: int) -> None:
    """RLIMIT_AS: an allocation past the limit fails (MemoryError in Python) instead of the
    machine swapping or the kernel's OOM killer choosing a victim — maybe the main process."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _no_core_file() -> None:
    """A crash leaves no core file: it would hold the message and what the parse made of it (up
    to the memory limit, on the disk, for each crash a message can cause)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _check_room() -> None:
    """MemoryError when the memory limit leaves too little to parse even a small message (the
    interpreter and the parser take some 30 MB of it): every message would fail alike, so the
    process says so once, instead of each message being found unparsable."""
    room = bytearray(_ROOM)
    del room


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None  # the parent closed the pipe: time to end
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load(spec: str) -> Callable[[bytes], Any]:
    """ "module:function" → the function (tests give their own; the product parses mail)."""
    module, _, name = spec.partition(":")
    function: Callable[[bytes], Any] = getattr(importlib.import_module(module), name)
    return function


def serve(parse: Callable[[bytes], Any], requests: int, replies: int) -> None:
    """Answer requests until the parent closes the pipe. A request is a chunk: a count, then
    that many messages; each is answered in turn once all are here."""
    while True:
        chunk = _read_chunk(requests)
        if chunk is None:
            return
        _send(replies, _RECEIVED)
        while chunk:
            raw = chunk.pop(0)
            try:
                data = _dump(("ok", parse(raw)))
            except MemoryError:
                # The heap a failed parse leaves is no place for the next: this process ends.
                _send(replies, _dump(("memory", "it ran out of its memory limit")))
                return
            except Exception as exc:
                data = _dump(("error", f"{type(exc).__name__}: {exc}"[:500]))
            del raw
            _send(replies, data)


def _read_chunk(requests: int) -> list[bytes] | None:
    header = _read_exactly(requests, _LENGTH.size)
    if header is None:
        return None
    chunk = []
    for _ in range(_LENGTH.unpack(header)[0]):
        length = _read_exactly(requests, _LENGTH.size)
        raw = _read_exactly(requests, _LENGTH.unpack(length)[0]) if length is not None else None
        if raw is None:
            return None  # the parent closed the pipe: time to end
        chunk.append(raw)
    return chunk


def _dump(reply: tuple[str, Any]) -> bytes:
    return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)


def _send(fd: int, data: bytes) -> None:
    if len(data) < _JOIN_BELOW:  # one write for a small answer
        _write_all(fd, _LENGTH.pack(len(data)) + data)
        return
    _write_all(fd, _LENGTH.pack(len(data)))
    _write_all(fd, data)  # not joined to the length: a large result is not copied


_JOIN_BELOW = 256 * 1024


_RECEIVED = _dump(("received", None))


def main(argv: list[str] | None = None) -> None:
    options = argparse.ArgumentParser(prog="mailgate-parse-worker")
    options.add_argument("--memory-mb", type=int, default=0)
    options.add_argument("--parse", required=True)
    given = options.parse_args(argv)
    _die_with_parent()
    _no_core_file()
    # Ctrl-C in a terminal reaches the whole process group: the parent decides, and this
    # process ends when the parent closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The replies get a descriptor of their own and fd 1 becomes stderr: a stray print (a
    # library's warning) can never corrupt the frames the parent reads.
    replies = os.dup(1)
    os.dup2(2, 1)
    try:
        parse = _load(given.parse)  # imported before the limit: the code is no message's cost
        _limit_memory(given.memory_mb)
        _check_room()
    except MemoryError:
        _send(replies, _dump(("memory", "no room to parse")))
        sys.exit(1)
    except Exception as exc:  # the parent says it to the admin: the installation is broken
        _send(replies, _dump(("broken", f"{type(exc).__name__}: {exc}"[:500])))
        sys.exit(1)
    _send(replies, _dump(("ready", None)))
    serve(parse, 0, replies)


if __name__ == "__main__":
    main(sys.argv[1:])

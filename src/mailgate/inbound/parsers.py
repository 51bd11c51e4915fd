"""Every message is parsed in a parsing process, with a deadline and a memory limit.

Anyone on the internet can write to a mailbox, and a message can be built to make a parser slow
or greedy. So no message is ever parsed in the process that holds the database and the mailbox
connections: `ParserPool` keeps a few parsing processes (`parse_worker`) and sends each message
to one of them. A parse that outlives its deadline is ended by killing its process; one that
needs more memory than its limit fails there (MemoryError) or the process dies — either way the
pool starts a new process and tries the message once more (a machine briefly overloaded should
not cost a customer's mail). A message that fails twice is `Unparsable`, and the pipeline
quarantines it with the reason: it is recorded and never fetched or parsed again.

Parsing also never happens while the database's write lock is held: the pipeline parses first,
then opens its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from mailgate.errors import OperationFailed

if TYPE_CHECKING:
    from mailgate.inbound.parse import InboundMessage

log = structlog.get_logger(__name__)

__all__ = ["PARSERS", "ParseLimits", "ParserPool", "Unparsable"]

PARSERS = max(1, min(os.cpu_count() or 1, 4))
PARSE = "mailgate.inbound.parse:parse_message"
_LENGTH = struct.Struct(">Q")
_READ_BUFFER = 1 << 20


@dataclass(frozen=True)
class ParseLimits:
    """What one message may cost its parsing process. The defaults are far above what real
    mail needs (a 25 MB message with attachments parses in about a second and a few hundred MB)
    and far below what a hostile one would take without them."""

    seconds: float = 20.0
    seconds_per_megabyte: float = 2.0  # a large message is allowed longer
    memory_megabytes: int = 2048  # per parsing process (RLIMIT_AS); 0: no limit
    attempts: int = 2  # a message whose parser was killed this many times is unparsable

    def deadline(self, size: int) -> float:
        """Seconds allowed to parse a message of `size` bytes."""
        return self.seconds + self.seconds_per_megabyte * size / 1_000_000


@dataclass(frozen=True)
class Unparsable:
    """A message that could not be parsed within the limits; `reason` says how it failed."""

    reason: str


class _Lost(Exception):
    """The parsing process did not answer: killed at its deadline, or it died."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGKILL":
            return "its process was killed (SIGKILL: out of memory?)"
        return f"its process crashed ({name})"
    return f"its process ended (exit status {returncode})"


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process

    async def request(self, raw: bytes, deadline: float) -> tuple[str, Any]:
        """Send one message; its ("ok" | "memory" | "error", value) reply."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            async with asyncio.timeout(deadline):
                stdin.write(_LENGTH.pack(len(raw)))
                stdin.write(raw)
                await stdin.drain()
                header = await stdout.readexactly(_LENGTH.size)
                data = await stdout.readexactly(_LENGTH.unpack(header)[0])
        except TimeoutError:
            self.kill()
            shown = f"{deadline:.0f}" if deadline >= 1 else f"{deadline:.2g}"
            raise _Lost(f"it took longer than {shown} s") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            returncode = await self._ended()
            raise _Lost(_exit_reason(returncode)) from None
        reply: tuple[str, Any] = pickle.loads(data)  # noqa: S301 - our own process's answer
        return reply

    async def _ended(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                return await self.process.wait()
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


@dataclass(eq=False)
class ParserPool:
    """Up to `size` parsing processes, started when first needed (or by `warm_up`) and kept
    for the next messages. One pool per process's Context; `close` ends them.

    `parse` names the function a parsing process runs ("module:function"): the product's
    parser; tests give one of their own (slow, or recording its calls) to see the limits act.
    """

    limits: ParseLimits = field(default_factory=ParseLimits)
    size: int = PARSERS
    parse: str = PARSE
    attempts_made: int = 0  # parse requests sent (tests and benchmarks read it)
    _idle: list[_Worker] = field(default_factory=list)
    _all: set[_Worker] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None
    _warming: set[asyncio.Task[None]] = field(default_factory=set)

    async def parse_all(self, raws: list[bytes]) -> list[InboundMessage | Unparsable]:
        """Each message parsed (or found unparsable), in order; several at once."""
        if not raws:
            return []
        return list(await asyncio.gather(*(self.parse_one(raw) for raw in raws)))

    async def parse_one(self, raw: bytes) -> InboundMessage | Unparsable:
        """One message, parsed within the limits, or why it could not be."""
        deadline = self.limits.deadline(len(raw))
        failures: list[str] = []
        while len(failures) < max(1, self.limits.attempts):
            worker = await self._acquire()
            alive = False
            try:
                self.attempts_made += 1
                kind, value = await worker.request(raw, deadline)
                alive = kind != "memory"
            except _Lost as lost:
                failures.append(lost.reason)
                continue
            finally:
                self._release(worker, alive=alive)
            if kind == "ok":
                parsed: InboundMessage = value
                return parsed
            if kind == "memory":
                failures.append(f"it needed more than {self.limits.memory_megabytes} MB")
                continue
            log.error("the parser failed on a message", error=value)
            return Unparsable(f"the parser failed on it ({value})")
        log.warning("message could not be parsed within limits", failures=failures)
        times = "twice" if len(failures) == 2 else f"{len(failures)} times"
        return Unparsable(f"could not be parsed within limits: {failures[-1]} ({times})")

    def warm_up(self) -> None:
        """Start the parsing processes now, in the background: their start overlaps the
        caller's (connecting, signing in, reading files) when many messages are coming."""
        missing = self.size - len(self._all) - len(self._warming)
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._warm())
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    async def close(self) -> None:
        """End every parsing process (closing its pipe ends it; a stuck one is killed)."""
        for task in list(self._warming):
            task.cancel()
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in workers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await worker.process.wait()
            worker.kill()
            with contextlib.suppress(ProcessLookupError):
                await worker.process.wait()

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        return self._slots

    async def _warm(self) -> None:
        slots = self._semaphore()
        async with slots:
            if not self._idle and len(self._all) < self.size:
                self._idle.append(await self._start())

    async def _acquire(self) -> _Worker:
        slots = self._semaphore()
        await slots.acquire()
        try:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.returncode is None:
                    return worker
                self._all.discard(worker)
            return await self._start()
        except BaseException:
            slots.release()
            raise

    def _release(self, worker: _Worker, *, alive: bool) -> None:
        if alive and worker in self._all:
            self._idle.append(worker)
        else:
            worker.kill()  # what it was doing is unknown: a new one next time
            self._all.discard(worker)
        self._semaphore().release()

    async def _start(self) -> _Worker:
        # The parent's module path, as multiprocessing's "spawn" passes it: a test's own parse
        # function imports in the parsing process as it does here.
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mailgate.inbound.parse_worker",
                f"--memory-mb={self.limits.memory_megabytes}",
                f"--parse={self.parse}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=environment,
                limit=_READ_BUFFER,
            )
        except OSError as exc:
            raise OperationFailed(
                f"A parsing process could not be started ({exc.strerror}): check that "
                f"{sys.executable} runs and that the machine may start processes."
            ) from None
        worker = _Worker(process)
        self._all.add(worker)
        return worker

"""Every message is parsed in a parsing process, with a deadline and a memory limit.

Anyone on the internet can write to a mailbox, and a message can be built to make a parser slow
or greedy. So no message is ever parsed in the process that holds the database and the mailbox
connections: `ParserPool` keeps a few parsing processes (`worker`) and sends each message
to one of them. A parse that outlives its deadline is ended by killing its process; one that
needs more memory than its limit fails there (MemoryError) or the process dies — either way the
pool starts a new process and tries the message once more (a machine briefly overloaded should
not cost a customer's mail). A message that fails twice is `Unparsable`, and the pipeline
quarantines it with the reason: it is recorded and never fetched or parsed again.

Only what a message did counts against it. A parse's deadline starts once its process is ready;
a process that ended before it had the whole message (it died while idle) is replaced without
counting; a process that cannot start at all (a broken installation, a memory limit too low to
parse anything) raises `OperationFailed` for the admin — a mailbox retries later — instead of
every message in turn being found unparsable.

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
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog

from mailgate.errors import OperationFailed

log = structlog.get_logger(__name__)

__all__ = ["PARSERS", "ParseLimits", "ParserPool", "Unparsable"]

PARSERS = max(1, min(os.cpu_count() or 1, 4))
PARSE = "mailgate.inbound.parse:parse_message"
START_SECONDS = 60.0  # for a parsing process to start (a machine under load is slow to)
_LENGTH = struct.Struct(">Q")
_READ_BUFFER = 1 << 20
_SECRETS = ("MAILGATE_SECRET_KEYS", "MAILGATE_DATABASE_URL")  # keys; a database password


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
    """The parsing process did not answer: killed at its deadline, or it died. `received`:
    whether it had the whole message (before that, its end is not the message's doing)."""

    def __init__(
        self, reason: str, *, received: bool = True, done: list[tuple[str, Any]] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.received = received
        self.done = done or []


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


def _seconds(deadline: float) -> str:
    return f"{deadline:.0f} s" if deadline >= 1 else f"{deadline:.2g} s"


def _stopped() -> OperationFailed:
    return OperationFailed(
        "The parsing processes were stopped (mailgate is stopping): the message is taken at "
        "the next start."
    )


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    served: int = 0  # messages answered

    async def ready(self, memory_megabytes: int) -> None:
        """Wait until the process has started (its imports, its memory limit); the deadline
        of a parse is the parse's own."""
        try:
            async with asyncio.timeout(START_SECONDS):
                kind, detail = await self._reply()
        except TimeoutError:
            self.kill()
            raise OperationFailed(
                f"A parsing process could not start within {START_SECONDS:.0f} s: the machine "
                f"is overloaded, or {sys.executable} hangs."
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError):
            kind, detail = "broken", _exit_reason(await self._ended())
        if kind == "ready":
            return
        self.kill()
        if kind == "memory":
            raise OperationFailed(
                f"A parsing process could not start: its memory limit of {memory_megabytes} MB "
                "leaves it no room to parse anything. Raise MAILGATE_PARSE_MEMORY_MB."
            )
        raise OperationFailed(
            f"A parsing process could not start ({detail}): `{sys.executable} -m "
            "mailgate.sandbox.worker` fails. Check the installation."
        )

    async def request(self, raws: list[bytes], deadlines: list[float]) -> list[tuple[str, Any]]:
        """Send a chunk of messages; their ("ok" | "memory" | "error", value) replies, in order,
        each within its own deadline (counted from the reply before it). After a "memory"
        reply the process ends: the replies stop there. `_Lost.done` holds the replies that came
        before a loss: the message after them is the one the process was parsing."""
        stdin = self.process.stdin
        assert stdin is not None
        replies: list[tuple[str, Any]] = []
        received = False
        try:
            async with asyncio.timeout(deadlines[0]):
                stdin.write(_LENGTH.pack(len(raws)))
                for raw in raws:
                    stdin.write(_LENGTH.pack(len(raw)))
                    stdin.write(raw)
                await stdin.drain()
                await self._reply()  # ("received", None): the messages are the process's now
            received = True
            for deadline in deadlines:
                async with asyncio.timeout(deadline):
                    replies.append(await self._reply())
                self.served += 1
                if replies[-1][0] == "memory":
                    break
        except TimeoutError:
            self.kill()
            allowed = _seconds(deadlines[len(replies) if received else 0])
            raise _Lost(f"it took longer than {allowed}", received=received, done=replies) from None
        except (asyncio.IncompleteReadError, ConnectionError):
            returncode = await self._ended()
            raise _Lost(_exit_reason(returncode), received=received, done=replies) from None
        except MemoryError:
            # In this process, reading the result: a failure of this message, not of the
            # mailbox (raised on, it would stop the mailbox at this message at every poll).
            self.kill()
            reason = "its result was too large for mailgate's own memory"
            raise _Lost(reason, received=received, done=replies) from None
        return replies

    async def _reply(self) -> tuple[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        header = await stdout.readexactly(_LENGTH.size)
        data = await stdout.readexactly(_LENGTH.unpack(header)[0])
        # Our own parsing process's answer, built from the message by our code (the message
        # is data in it, never a class to load).
        reply: tuple[str, Any] = pickle.loads(data)  # noqa: S301
        return reply

    async def _ended(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                return await self.process.wait()
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


CHUNK_MESSAGES = 16  # messages sent to a process in one exchange
CHUNK_BYTES = 4 * 1024 * 1024  # ... and bytes (one larger message goes alone)


class _Job:
    """The messages of one `parse_all`: what is parsed, what failed how often, what is left.

    Messages go out in chunks; a message that defeated a process goes out alone after that,
    so that what a process does is always known to be that one message's doing."""

    def __init__(self, raws: list[bytes], limits: ParseLimits) -> None:
        self.raws = raws
        self.limits = limits
        self.deadlines = [limits.deadline(len(raw)) for raw in raws]
        self.results: dict[int, object] = {}
        self.failures: dict[int, list[str]] = {}
        self.waiting: deque[int] = deque(range(len(raws)))
        self.spared = 0  # processes that ended before they had their messages

    def chunks(self) -> int:
        return max(1, -(-len(self.raws) // CHUNK_MESSAGES))

    def next_chunk(self) -> list[int] | None:
        if not self.waiting:
            return None
        first = self.waiting.popleft()
        chunk, held = [first], len(self.raws[first])
        if first in self.failures:
            return chunk
        while self.waiting and len(chunk) < CHUNK_MESSAGES:
            index = self.waiting[0]
            if index in self.failures or held + len(self.raws[index]) > CHUNK_BYTES:
                break
            chunk.append(self.waiting.popleft())
            held += len(self.raws[index])
        return chunk

    def answered(self, chunk: list[int], replies: list[tuple[str, Any]]) -> None:
        for index, (kind, value) in zip(chunk, replies, strict=False):
            if kind == "ok":
                self.results[index] = value
            elif kind == "memory":
                self._failed(index, f"it needed more than {self.limits.memory_megabytes} MB")
            else:
                log.error("the parser failed on a message", error=value)
                self.results[index] = Unparsable(f"the parser failed on it ({value})")
        self.waiting.extendleft(reversed(chunk[len(replies) :]))  # the process ended first

    def lost(self, chunk: list[int], lost: _Lost, *, spare: bool) -> None:
        """The process was lost on this chunk: the replies before the loss count; the message
        it was parsing is blamed; the rest go out again."""
        done = len(lost.done)
        self.answered(chunk[:done], lost.done)
        rest = chunk[done:]
        # Ended before it had the messages: no message's doing if it died while idle (the OOM
        # killer's choice, say; a new process never counts here, so this ends), nor known to
        # be one's if there were several (each goes alone next, to see whose doing it was).
        if not lost.received and (spare or len(rest) > 1):
            self.spared += 1 if spare else 0
            for index in rest:
                self.failures.setdefault(index, [])
            self.waiting.extendleft(reversed(rest))
            return
        self._failed(rest[0], lost.reason)
        self.waiting.extendleft(reversed(rest[1:]))

    def _failed(self, index: int, reason: str) -> None:
        failures = self.failures.setdefault(index, [])
        failures.append(reason)
        if len(failures) < max(1, self.limits.attempts):
            self.waiting.appendleft(index)
            return
        log.warning("message could not be parsed within limits", failures=failures)
        times = "twice" if len(failures) == 2 else f"{len(failures)} times"
        self.results[index] = Unparsable(
            f"could not be parsed within limits: {failures[-1]} ({times})"
        )

    def outcome(self) -> list[object]:
        return [self.results[index] for index in range(len(self.raws))]


@dataclass(eq=False)
class ParserPool:
    """Up to `size` parsing processes, started when first needed (or by `warm_up`) and kept
    for the next messages. One pool per process's Context; `close` ends them, and the pool
    parses nothing after it.

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
    # Processes killed and not yet reaped: `close` waits for them too, so none is left to the
    # garbage collector (its pipes would be closed on a loop that has ended).
    _ending: set[asyncio.Task[int]] = field(default_factory=set)
    _closed: bool = False

    async def parse_all(self, raws: list[bytes]) -> list[object]:
        """Each message parsed (or found unparsable), in order; several processes at once,
        each sent a chunk of messages at a time (one exchange for many small messages)."""
        if not raws:
            return []
        job = _Job(raws, self.limits)
        runners = [
            asyncio.ensure_future(self._run(job)) for _ in range(min(self.size, job.chunks()))
        ]
        try:
            await asyncio.gather(*runners)
        except BaseException:
            # One failed (the processes cannot start, or were stopped), or the caller gave
            # up: the others stop too, instead of going on unawaited.
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            raise
        return job.outcome()

    async def parse_one(self, raw: bytes) -> object:
        """One message, parsed within the limits, or why it could not be."""
        [parsed] = await self.parse_all([raw])
        return parsed

    async def _run(self, job: _Job) -> None:
        """Send the job's chunks to a process, one after another, until none is left."""
        while (chunk := job.next_chunk()) is not None:
            worker = await self._acquire()
            alive = False
            try:
                self.attempts_made += len(chunk)
                replies = await worker.request(
                    [job.raws[index] for index in chunk], [job.deadlines[index] for index in chunk]
                )
                alive = replies[-1][0] != "memory"
            except _Lost as lost:
                if self._closed:
                    raise _stopped() from None
                job.lost(chunk, lost, spare=bool(worker.served) and job.spared < self.size)
                continue
            finally:
                self._release(worker, alive=alive)
            job.answered(chunk, replies)

    def warm_up(self) -> None:
        """Start the parsing processes now, in the background: their start overlaps the
        caller's (connecting, signing in, reading files) when many messages are coming."""
        if self._closed:
            return
        missing = self.size - len(self._all) - len(self._warming)
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._warm())
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    async def close(self) -> None:
        """End every parsing process (closing its pipe ends it; a stuck one is killed). A
        parse in progress fails as stopped; nothing is parsed after."""
        self._closed = True
        warming = list(self._warming)
        for task in warming:
            task.cancel()
        await asyncio.gather(*warming, return_exceptions=True)
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        if workers:
            ending = [asyncio.ensure_future(worker.process.wait()) for worker in workers]
            await asyncio.wait(ending, timeout=2)
        for worker in workers:
            worker.kill()
            await worker.process.wait()
        await asyncio.gather(*self._ending, return_exceptions=True)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        return self._slots

    async def _warm(self) -> None:
        slots = self._semaphore()
        async with slots:
            if not self._idle and len(self._all) < self.size:
                try:
                    self._idle.append(await self._start())
                except OperationFailed as exc:
                    # Said again, to the caller, by the parse that needs a process.
                    log.warning("a parsing process could not start", error=str(exc))

    async def _acquire(self) -> _Worker:
        slots = self._semaphore()
        await slots.acquire()
        try:
            if self._closed:
                raise _stopped()
            while self._idle:
                worker = self._idle.pop()
                if worker.process.returncode is None:
                    return worker
                self._retire(worker)
            return await self._start()
        except BaseException:
            slots.release()
            raise

    def _release(self, worker: _Worker, *, alive: bool) -> None:
        if alive and worker in self._all:
            self._idle.append(worker)
        else:
            self._retire(worker)  # what it was doing is unknown: a new one next time
        self._semaphore().release()

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        self._all.discard(worker)
        ending = asyncio.ensure_future(worker.process.wait())
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)

    async def _start(self) -> _Worker:
        # The process that reads strangers' mail gets no secret it does not need. And the
        # parent's module path, as multiprocessing's "spawn" passes it: a test's own parse
        # function imports in the parsing process as it does here.
        environment = {k: v for k, v in os.environ.items() if k not in _SECRETS}
        environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mailgate.sandbox.worker",
                f"--memory-mb={self.limits.memory_megabytes}",
                f"--parse={self.parse}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=environment,
                limit=_READ_BUFFER,
            )
        except OSError as exc:
            raise OperationFailed(
                f"A parsing process could not start ({exc.strerror}): check that "
                f"{sys.executable} runs and that the machine may start processes."
            ) from None
        worker = _Worker(process)
        try:
            await worker.ready(self.limits.memory_megabytes)
        except BaseException:
            worker.kill()
            await worker.process.wait()
            raise
        if self._closed:  # closed while it started
            worker.kill()
            await worker.process.wait()
            raise _stopped()
        self._all.add(worker)
        return worker

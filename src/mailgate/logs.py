"""Structured logs on standard error, with secrets redacted from every line.

One line per event. On a terminal the line is for a person (`console`); anywhere else — a
service manager, a container, a pipe — it is one JSON object (`json`):

    {"timestamp": "2025-01-31T08:00:00.123456Z", "level": "info", "logger":
     "mailgate.inbound.pipeline", "event": "message taken", "mailbox": "support",
     "message": 41, "message_id": "<a1@example.com>", "issue": "SUP-7", "status": "created"}

`MAILGATE_LOG_FORMAT=json|console` chooses regardless of the terminal. The identifiers a line
carries, where the code knows them: `mailbox` (name), `credential` (id), `message` (a receipt's
or an outbox message's id; `message_id` its Message-ID), `issue` (key, e.g. SUP-7).

Secrets are taken out by construction, for both formats and for the standard library's records
(uvicorn, httpx, alembic) alike: `redact` runs last before the renderer, after tracebacks were
made text. It blanks values whose key names a secret (at any depth), shows a `Secret` as
[redacted], scrubs bearer tokens, form and JSON secrets and SASL payloads from every text, and
turns every other object into its scrubbed repr, so the renderer meets nothing it has to
render on its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from enum import Enum
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(token|secret|password|authorization|verifier|assertion|cookie)", re.I)
_SECRET_TEXT = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)\b(access_token|refresh_token|id_token|client_secret|code_verifier|code|password)"
        r"(\"?\s*[=:]\s*\"?)[^\s&\",]+"
    ),
    # SASL XOAUTH2 / OAUTHBEARER initial responses are base64 of a string holding the token.
    re.compile(r"(?i)\b(AUTHENTICATE|AUTH)\s+(XOAUTH2|OAUTHBEARER|PLAIN|LOGIN)\s+\S+"),
]
# Keys structlog and the renderers own: never blanked, whatever they are called.
_OWN_KEYS = frozenset({"event", "timestamp", "level", "logger", "exception"})
_DEPTH = 6  # nesting shown; deeper values are cut off (a log line is not a data dump)

LogFormat = Literal["json", "console"]
FORMATS: tuple[LogFormat, ...] = ("json", "console")


class Secret:
    """A type whose values are secrets: wherever one is logged, the line shows [redacted]."""

    __slots__ = ()


def redact_text(text: str) -> str:
    """Remove bearer tokens, secrets in form/JSON fields and SASL payloads from a string."""
    text = _SECRET_TEXT[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_TEXT[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SECRET_TEXT[2].sub(lambda m: f"{m.group(1)} {m.group(2)} {REDACTED}", text)


def _clean(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-native values (str, int, float, bool, None, list, dict), secrets out."""
    if isinstance(value, Enum):
        value = value.value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if depth >= _DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if _SECRET_KEY.search(str(key)) else _clean(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, depth + 1) for item in value]
    # Anything else by its repr, scrubbed: the types that hold secrets keep them out of it
    # (fields declared repr=False, or a __repr__ of their own).
    return redact_text(repr(value))


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> EventDict:
    """structlog processor: secret-looking keys are blanked, every value is scrubbed."""
    return {
        key: REDACTED if key not in _OWN_KEYS and _SECRET_KEY.search(key) else _clean(value)
        for key, value in event.items()
    }


def _add_logger_name(logger: Any, _method: str, event: EventDict) -> EventDict:
    """The logger's name: a standard library record's, or the one given to get_logger."""
    record = event.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event.setdefault("logger", name)
    return event


_FIRST = ("timestamp", "level", "logger", "event")


def _render_json(_logger: Any, _method: str, event: EventDict) -> str:
    """One JSON object a line; the fixed fields first, so a person can read it too."""
    ordered = {key: event[key] for key in _FIRST if key in event}
    ordered.update(event)
    return json.dumps(ordered, default=str)  # `redact` left only JSON-native values


def chosen_format(environ: Mapping[str, str], stream: TextIO) -> LogFormat:
    """MAILGATE_LOG_FORMAT if it is json or console; else console on a terminal, JSON not."""
    chosen = environ.get("MAILGATE_LOG_FORMAT", "").strip().lower()
    for known in FORMATS:
        if chosen == known:
            return known
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


class _StderrLogger:
    """Writes each line to whatever sys.stderr is at the time (it may be replaced)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = error = critical = exception = msg


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler that, too, writes to whatever sys.stderr is at the time."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _stderr_logger(name: Any = None, *_args: Any) -> _StderrLogger:
    return _StderrLogger(name if isinstance(name, str) else None)


def configure_logging(level: str = "info", log_format: LogFormat | None = None) -> None:
    """Logs go to stderr (stdout carries only a command's result), in `log_format` or as
    `chosen_format` says; the standard library's records the same way."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    fmt = log_format or chosen_format(os.environ, sys.stderr)
    renderer: Processor = (
        _render_json
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    first: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_logger_name,
    ]
    # Tracebacks become text before `redact`, and `redact` runs last before the renderer.
    last: list[Processor] = [structlog.processors.format_exc_info, redact, renderer]
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=first,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
        )
    )
    logging.basicConfig(handlers=[handler], level=numeric, force=True)
    for existing in list(logging.root.manager.loggerDict.values()):
        if isinstance(existing, logging.Logger):
            # One way out for every record: a library that set up its own handler (uvicorn's
            # default configuration does) would write lines in a format of its own.
            existing.handlers.clear()
            existing.propagate = True
    for noisy in ("httpx2", "httpcore", "httpcore2", "uvicorn.access", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*first, *last],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    wanted = os.environ.get("MAILGATE_LOG_FORMAT", "").strip().lower()
    if wanted and wanted not in FORMATS:
        structlog.get_logger(__name__).warning(
            "MAILGATE_LOG_FORMAT is neither json nor console; using " + fmt, value=wanted
        )


def bind(**identifiers: object) -> None:
    """Bind identifiers (mailbox, credential, message, issue) to every later line of this task
    (asyncio copies them into the tasks it starts); None unbinds one."""
    structlog.contextvars.unbind_contextvars(*(k for k, v in identifiers.items() if v is None))
    structlog.contextvars.bind_contextvars(
        **{k: v for k, v in identifiers.items() if v is not None}
    )

"""Structured logs on standard error, with secrets redacted from every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

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


def redact_text(text: str) -> str:
    """Remove bearer tokens, secrets in form/JSON fields and SASL payloads from a string."""
    text = _SECRET_TEXT[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_TEXT[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SECRET_TEXT[2].sub(lambda m: f"{m.group(1)} {m.group(2)} {REDACTED}", text)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret-looking keys are blanked, every string value is scrubbed."""
    for key, value in list(event.items()):
        if _SECRET_KEY.search(key) and key not in ("event",):
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


class _StderrLogger:
    """Writes each line to whatever sys.stderr is at the time (it may be replaced)."""

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


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "info") -> None:
    """Logs go to stderr (stdout carries only a command's result)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(
        handlers=[_StderrHandler()], level=numeric, format="%(message)s", force=True
    )
    for noisy in ("httpx2", "httpcore", "httpcore2", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.dev.ConsoleRenderer(colors=False)
            if sys.stderr.isatty()
            else structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )

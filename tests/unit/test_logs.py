import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog
import uvicorn.config

from mailgate.logs import bind, chosen_format, configure_logging, redact, redact_text
from mailgate.oauth.tokens import AccessToken
from mailgate.store.secretbox import SecretBox

CANARIES = ("canary-in-event", "canary-nested", "canary-in-exception", "canary-token-value")


def test_bearer_and_form_secrets_are_redacted() -> None:
    text = redact_text(
        "Authorization: Bearer eyJabc.def-ghi refresh_token=0.AAA-secret&scope=x "
        '{"client_secret": "canary"} AUTHENTICATE XOAUTH2 dXNlcj1h'
    )
    for secret in ("eyJabc", "0.AAA-secret", "canary", "dXNlcj1h"):
        assert secret not in text
    assert "scope=x" in text


def test_secret_keys_in_events_are_blanked() -> None:
    event = redact(None, "info", {"event": "refreshed", "access_token": "abc", "credential": 3})
    assert event == {"event": "refreshed", "access_token": "[redacted]", "credential": 3}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_format_is_json_off_a_terminal_unless_asked_otherwise() -> None:
    assert chosen_format({}, io.StringIO()) == "json"
    assert chosen_format({}, _Terminal()) == "console"
    assert chosen_format({"MAILGATE_LOG_FORMAT": "json"}, _Terminal()) == "json"
    assert chosen_format({"MAILGATE_LOG_FORMAT": "Console"}, io.StringIO()) == "console"
    assert chosen_format({"MAILGATE_LOG_FORMAT": "xml"}, io.StringIO()) == "json"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


def test_every_line_is_one_json_object_with_the_bound_identifiers(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # As uvicorn's default configuration leaves its loggers: handlers of their own.
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    configure_logging("info", "json")
    bind(mailbox="support", credential=3, message=None)
    structlog.get_logger("mailgate.inbound.pipeline").info("message taken", issue="HELP-1")
    bind(credential=None)  # unbound again
    logging.getLogger("uvicorn.error").warning("a standard library record, %s", "formatted")
    first, second = _lines(capsys.readouterr().err)
    assert first["event"] == "message taken" and first["level"] == "info"
    assert first["logger"] == "mailgate.inbound.pipeline"
    assert (first["mailbox"], first["credential"], first["issue"]) == ("support", 3, "HELP-1")
    assert "message" not in first
    stamp = datetime.fromisoformat(str(first["timestamp"]))
    assert stamp.utcoffset() == UTC.utcoffset(None)
    assert second["event"] == "a standard library record, formatted"
    assert (second["logger"], second["level"], second["mailbox"]) == (
        "uvicorn.error",
        "warning",
        "support",
    )
    assert "credential" not in second


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_secret_reaches_a_line(
    log_format: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", log_format)  # type: ignore[arg-type]
    log = structlog.get_logger("mailgate.test")
    token = AccessToken(1, "alice@example.test", datetime.now(UTC), value="canary-token-value")
    log.info(
        "refreshed",
        refresh_token="canary-in-event",
        detail={"response": {"client_secret": "canary-nested", "scope": "IMAP"}},
        sent=[b"AUTHENTICATE XOAUTH2 canary-nested"],
        token_in_hand=token,
        used=token,
        box=SecretBox([b"k" * 43 + b"="]),
    )
    try:
        raise RuntimeError("the server said: Authorization: Bearer canary-in-exception")
    except RuntimeError:
        log.exception("refresh failed")
        logging.getLogger("httpx").exception("request failed: password=canary-in-exception")
    err = capsys.readouterr().err
    assert "refresh failed" in err and "request failed" in err
    assert err.count("Traceback (most recent call last)") == 2  # tracebacks are logged…
    for canary in CANARIES:
        assert canary not in err  # …without the secrets in them
    assert "[redacted]" in err and "IMAP" in err  # what is not secret stays
    if log_format == "json":
        lines = _lines(err)
        assert [line["event"] for line in lines] == [
            "refreshed",
            "refresh failed",
            "request failed: password=[redacted]",
        ]
        assert lines[0]["used"] == lines[0]["box"] == "[redacted]"
        assert "Bearer [redacted]" in str(lines[1]["exception"])

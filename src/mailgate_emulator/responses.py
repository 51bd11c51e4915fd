"""HTTP answers in each provider's shape: token JSON, error JSON, and injected outages."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from mailgate_emulator.errors import EmulatedError, MicrosoftError
from mailgate_emulator.messages import TRANSIENT
from mailgate_emulator.model import Fault, Provider

# RFC 6749 §5.1: "The authorization server MUST include the HTTP "Cache-Control" response header
# field with a value of "no-store" in any response containing tokens".
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer that caches must not keep."""
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers={**_NO_STORE, **(headers or {})},
    )


def aad_timestamp(at: float) -> str:
    """Microsoft's error timestamp: `2021-06-19 15:14:59Z`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def microsoft_error_body(
    err: MicrosoftError, at: float, correlation_id: str | None = None
) -> dict[str, Any]:
    """The Microsoft identity platform's error JSON, trace and correlation ids included.

    The shape, as answered by login.microsoftonline.com (Azure/azure-cli#14244):
    `{"error", "error_description": "AADSTS…\\r\\nTrace ID: …\\r\\nCorrelation ID: …\\r\\n
    Timestamp: …", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}`.
    """
    trace_id = str(uuid.uuid4())
    # Entra ID echoes a client-request-id header as the correlation id.
    correlation = correlation_id or str(uuid.uuid4())
    stamp = aad_timestamp(at)
    return {
        "error": err.error,
        "error_description": (
            f"{err.description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}"
            f"\r\nTimestamp: {stamp}"
        ),
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }


def error_response(err: EmulatedError, at: float, correlation_id: str | None = None) -> Response:
    """The error in the shape of the provider that raised it."""
    if isinstance(err, MicrosoftError):
        body = microsoft_error_body(err, at, correlation_id)
        return json_response(body, err.status, {"x-ms-request-id": body["trace_id"]})
    return json_response({"error": err.error, "error_description": err.description}, err.status)


_PLAIN_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 504: "Gateway Timeout"}

# What a load balancer in front of the token endpoint sends when the backend is gone.
_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_UNAVAILABLE_HTML = (
    "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error 503 (Service Unavailable)"
    "</title><p><b>503.</b> <ins>That’s an error.</ins><p>The service is currently unavailable. "
    "Please try again later. <ins>That’s all we know.</ins>\n"
)


def fault_response(provider: Provider | None, fault: Fault, at: float) -> Response:
    """The body an injected failure answers with: what the provider's edge really sends.

    502 is an HTML gateway page; 503 from Microsoft is its `temporarily_unavailable` JSON
    (AADSTS90033, Azure/azure-sdk-for-python#14241), from Google an HTML error page; anything
    else is plain text. A fault may bring its own body.
    """
    assert fault.status is not None
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.body is not None:
        media = fault.content_type or "text/plain; charset=utf-8"
        return Response(fault.body, fault.status, headers=headers, media_type=media)
    if fault.status == 503 and provider == "microsoft":
        error = TRANSIENT()
        return json_response(microsoft_error_body(error, at), 503, headers)
    if fault.status == 502:
        return Response(_BAD_GATEWAY_HTML, 502, headers=headers, media_type="text/html")
    if fault.status == 503:
        return Response(
            _UNAVAILABLE_HTML, 503, headers=headers, media_type="text/html; charset=UTF-8"
        )
    reason = _PLAIN_REASONS.get(fault.status, "Error")
    return Response(reason, fault.status, headers=headers, media_type="text/plain; charset=utf-8")

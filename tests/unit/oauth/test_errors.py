import pytest

from mailgate.oauth.errors import Disposition, ProviderError, disposition, explain


def microsoft(error: str, code: int, text: str = "text", status: int = 400) -> ProviderError:
    description = (
        f"AADSTS{code}: {text}\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\n"
        "Timestamp: 2026-11-28 10:00:00Z"
    )
    return ProviderError(error, description, status, "https://login.example/token")


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [
        ("invalid_grant", 700082, Disposition.REAUTHORIZE),
        ("invalid_grant", 50173, Disposition.REAUTHORIZE),
        ("invalid_grant", 70008, Disposition.REAUTHORIZE),
        ("invalid_client", 7000222, Disposition.CLIENT),
        ("invalid_client", 7000215, Disposition.CLIENT),
        ("invalid_request", 900144, Disposition.CONFIGURATION),
        ("invalid_request", 900382, Disposition.CONFIGURATION),
        ("invalid_grant", 65001, Disposition.REAUTHORIZE),
    ],
)
def test_microsoft_codes(error: str, code: int, expected: Disposition) -> None:
    assert disposition(microsoft(error, code)) is expected


def test_explanation_keeps_the_provider_text_but_not_the_trace() -> None:
    text = explain(
        microsoft("invalid_client", 7000222, "The provided client secret keys are expired.")
    )
    assert "AADSTS7000222: The provided client secret keys are expired." in text
    assert "Trace ID" not in text
    assert "integration set" in text


def test_server_errors_are_retried() -> None:
    assert disposition(ProviderError("server_error", "", 500, "x")) is Disposition.RETRY
    assert disposition(ProviderError("temporarily_unavailable", "", 503, "x")) is Disposition.RETRY


def test_google_refusal_around_day_seven_points_at_testing_status() -> None:
    error = ProviderError("invalid_grant", "Token has been expired or revoked.", 400, "x")
    assert "Testing status" in explain(error, provider="google", grant_age_days=7.0)
    assert "Testing status" not in explain(error, provider="google", grant_age_days=30.0)
    assert "Testing status" not in explain(error, provider="microsoft", grant_age_days=7.0)

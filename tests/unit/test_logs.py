from mailgate.logs import redact, redact_text


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

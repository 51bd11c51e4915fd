"""Preloading the emulator from a JSON file (`python -m mailgate_emulator --config FILE.json`).

The file holds the control API's bodies grouped by kind::

    {"tenants": [{"tenant_id": "…", "domain": "contoso.example"}],
     "clients": [{"provider": "microsoft", "client_id": "…", "client_secret": "…",
                  "redirect_uris": ["https://mailgate.example/oauth/callback"]}],
     "accounts": [{"provider": "microsoft", "address": "alice@contoso.example",
                   "password": "demo", "tenant_id": "…"}],
     "resource_servers": [{"username": "dovecot", "password": "…"}],
     "grants": [{"provider": "google", "client_id": "…", "account": "a@example.com",
                 "scopes": "https://mail.google.com/", "refresh_token": "1//demo"}],
     "lifetimes": {"access_token": 600}}
"""

from __future__ import annotations

from pathlib import Path

from mailgate_emulator.schema import EmulatorConfig
from mailgate_emulator.state import EmulatorState


def load_config(path: Path, state: EmulatorState) -> None:
    """Apply the file's registrations to `state`; `ValueError` if the file is not valid."""
    text = path.read_text(encoding="utf-8")
    try:
        config = EmulatorConfig.model_validate_json(text)
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{path}: {err}") from err
    config.apply(state)

"""The demo preset: a directory, an app and two people to sign in with (`mailgate serve --demo`).

Everything is fixed so the quick start can print it: the Microsoft directory `contoso.example`
with the confidential app `DEMO_CLIENT_ID` / `DEMO_CLIENT_SECRET` (public client flows allowed,
so the device code flow works without the secret), a Google OAuth client, and the accounts
`alice@contoso.example` and `bob@contoso.example`, both with password `demo`, at both providers.
The redirect URIs depend on where mailgate is served, so the caller passes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailgate_emulator.state import EmulatorState

DEMO_TENANT_ID = "8f7a1c2e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
DEMO_TENANT_DOMAIN = "contoso.example"
DEMO_CLIENT_ID = "5d2c6a34-9b1e-4f70-8c3d-2a6b7e9f0c11"
DEMO_CLIENT_SECRET = "demo~client~secret~not~for~production"
DEMO_GOOGLE_CLIENT_ID = "000000000000-demo.apps.googleusercontent.com"
DEMO_GOOGLE_CLIENT_SECRET = "GOCSPX-demo-client-secret"
DEMO_PASSWORD = "demo"
DEMO_ACCOUNTS: dict[str, str] = {
    "alice@contoso.example": "Alice Demo",
    "bob@contoso.example": "Bob Demo",
}


def register_demo(state: EmulatorState, redirect_uris: Iterable[str] = ()) -> EmulatorState:
    """Load the demo preset into `state` (replacing its demo entries); returns `state`."""
    uris = tuple(redirect_uris)
    state.register_client(
        "microsoft",
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        tenant_id=DEMO_TENANT_ID,
        tenant_domain=DEMO_TENANT_DOMAIN,
        redirect_uris=uris,
        allow_public_client_flows=True,
    )
    state.register_client(
        "google", DEMO_GOOGLE_CLIENT_ID, DEMO_GOOGLE_CLIENT_SECRET, redirect_uris=uris
    )
    for address, name in DEMO_ACCOUNTS.items():
        state.register_account(
            "microsoft", address, DEMO_PASSWORD, tenant_id=DEMO_TENANT_ID, display_name=name
        )
        state.register_account("google", address, DEMO_PASSWORD, display_name=name)
    return state


def demo_state(redirect_uris: Iterable[str] = ()) -> EmulatorState:
    """A fresh emulator state holding only the demo preset."""
    return register_demo(EmulatorState(), redirect_uris)

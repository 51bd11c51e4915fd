"""A stand-in for the Microsoft identity platform v2.0 and Google OAuth token endpoints.

The providers can't be reached from tests, so this emulator answers as they do — rotation,
90-day inactivity, revocation, expired secrets, Google's 7-day testing grants, their error texts
— on a clock tests can advance. It also serves the interactive parts: sign-in and consent pages
for the authorization code flow (with PKCE) and the device code flow (RFC 8628).

`create_app(state)` is the ASGI app; `EmulatorState` holds what it knows and is what tests drive;
`python -m mailgate_emulator` serves it. `create_sign_in_app` is the part a person signing in
needs, without the control API, for `mailgate serve --demo`. A test double: the product package
`mailgate` never imports it, but for `mailgate.web.demo`.
"""

from mailgate_emulator.app import create_app, create_sign_in_app
from mailgate_emulator.clock import EmulatorClock
from mailgate_emulator.demo import demo_state, register_demo
from mailgate_emulator.errors import EmulatedError, GoogleError, MicrosoftError
from mailgate_emulator.model import (
    AccessToken,
    Account,
    AuthorizationCode,
    AuthorizationRequest,
    BrowserSession,
    Client,
    DeviceAuthorization,
    Fault,
    Grant,
    Lifetimes,
    Provider,
    RefreshToken,
    RequestRecord,
    ResourceServer,
    SignInFlow,
    Tenant,
)
from mailgate_emulator.pkce import s256_challenge
from mailgate_emulator.state import EmulatorState, IssuedGrant

__all__ = [
    "AccessToken",
    "Account",
    "AuthorizationCode",
    "AuthorizationRequest",
    "BrowserSession",
    "Client",
    "DeviceAuthorization",
    "EmulatedError",
    "EmulatorClock",
    "EmulatorState",
    "Fault",
    "GoogleError",
    "Grant",
    "IssuedGrant",
    "Lifetimes",
    "MicrosoftError",
    "Provider",
    "RefreshToken",
    "RequestRecord",
    "ResourceServer",
    "SignInFlow",
    "Tenant",
    "create_app",
    "create_sign_in_app",
    "demo_state",
    "register_demo",
    "s256_challenge",
]

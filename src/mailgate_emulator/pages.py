"""The HTML pages a browser sees: sign-in, consent, errors, device code entry.

Plain server-rendered forms with no script, so a test drives them with an HTTP client and
`html.parser`. Field names are a contract: `flow` (hidden), `login`, `password`, `user_code`, and
submit buttons `decision=accept` / `decision=cancel`. Every value is escaped. Each page says
"Emulator" so nobody mistakes it for the real provider. Wording follows the providers' pages where
it could be found (cited in `COPY`); the rest is the emulator's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from mailgate_emulator.model import Provider


@dataclass(frozen=True)
class Copy:
    """One provider's page texts."""

    product: str
    sign_in_title: str
    login_label: str
    unknown_account: str
    wrong_password: str
    consent_title: str
    accept: str
    cancel: str
    error_title: str
    device_title: str
    device_prompt: str
    device_wrong_code: str
    device_expired_code: str
    device_done: str
    device_declined: str


COPY: dict[Provider, Copy] = {
    "microsoft": Copy(
        product="Microsoft identity platform",
        sign_in_title="Sign in to your account",
        login_label="Email, phone, or Skype",
        # Unverified (the organizational variant of the username error).
        unknown_account=(
            "This username may be incorrect. Make sure you typed it correctly. Otherwise, "
            "contact your admin."
        ),
        # login.microsoftonline.com's CT_PWD_STR_Error_WrongCreds.
        wrong_password=(
            "Your account or password is incorrect. If you don't remember your password, "
            "reset it now."
        ),
        consent_title="Permissions requested",
        accept="Accept",
        cancel="Cancel",
        error_title="Sorry, but we're having trouble signing you in.",
        device_title="Enter code",
        device_prompt="Enter the code displayed on your app or device.",
        device_wrong_code="That code didn't work. Check the code and try again.",  # unverified
        device_expired_code="That code has expired. Get a new code from your app or device.",
        device_done=(
            "You have signed in to the {app} application on your device. You may now close "
            "this window."
        ),
        device_declined="You have declined to sign in to the {app} application on your device.",
    ),
    "google": Copy(
        product="Google Accounts",
        sign_in_title="Sign in",
        login_label="Email or phone",
        unknown_account="Couldn't find your Google Account",
        wrong_password="Wrong password. Try again or click Forgot password to reset it.",
        consent_title="{app} wants access to your Google Account",
        accept="Allow",
        cancel="Cancel",
        error_title="Access blocked: This app's request is invalid",
        device_title="Connect a device",
        device_prompt="Enter the code displayed on your device",
        device_wrong_code="Invalid code. Check the code and try again.",  # unverified
        device_expired_code="That code has expired. Get a new code from your device.",
        device_done="Success! {app} is now connected to your Google Account.",
        device_declined="You denied {app} access to your Google Account.",
    ),
}


# One sign-in card, as providers show them; the banner says plainly that this is a stand-in.
# Inline, because the pages carry their own CSP (`style-src 'unsafe-inline'`, no script).
_STYLE = """<style>
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
color:#1b1b1b;background:#eef1f5}
.emulator-banner{margin:0;padding:.6rem 1rem;background:#fff4d6;border-bottom:1px solid #ecd48a;
text-align:center}
main{max-width:26rem;margin:8vh auto;background:#fff;padding:2rem 2.25rem;
box-shadow:0 2px 8px rgba(0,0,0,.15)}
h1{font-size:1.5rem;font-weight:600;margin:0 0 .5rem}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=email],input[type=text],input[type=password]{display:block;width:100%;
box-sizing:border-box;margin-top:.25rem;padding:.5rem;font:inherit;border:0;
border-bottom:1px solid #666}
button{font:inherit;margin:1.25rem .5rem 0 0;padding:.45rem 1.6rem;border:1px solid #0067b8;
background:#0067b8;color:#fff;cursor:pointer}
button[value=cancel]{background:#fff;color:#0067b8}
:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
.error{color:#c0262d}.scopes{padding-left:1.2rem}
pre{white-space:pre-wrap;background:#f5f5f5;padding:.5rem}
</style>"""


def _layout(provider: Provider, title: str, body: str, status_line: str = "") -> str:
    product = COPY[provider].product
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} – {escape(product)} Emulator</title>{_STYLE}</head>\n<body>\n"
        f'<p class="emulator-banner"><strong>Emulator</strong> – a test stand-in for the '
        f"{escape(product)}, not the real sign-in page.</p>\n"
        f"<main>\n{status_line}{body}\n</main>\n</body></html>\n"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def _error(text: str | None) -> str:
    return f'<p class="error" role="alert">{escape(text)}</p>\n' if text else ""


def sign_in_page(
    provider: Provider,
    *,
    action: str,
    flow_id: str,
    app: str,
    login: str = "",
    login_error: str | None = None,
    password_error: str | None = None,
) -> str:
    """The login form: `login`, `password`, posting to `action` with the hidden `flow`."""
    copy = COPY[provider]
    body = (
        f"<h1>{escape(copy.sign_in_title)}</h1>\n"
        f'<p>to continue to <span class="app">{escape(app)}</span></p>\n'
        f'<form method="post" action="{escape(action)}">\n'
        f"{_hidden('flow', flow_id)}\n"
        f'<label>{escape(copy.login_label)} <input type="email" name="login" '
        f'value="{escape(login)}" autocomplete="username" required></label>\n'
        f"{_error(login_error)}"
        '<label>Password <input type="password" name="password" '
        'autocomplete="current-password" required></label>\n'
        f"{_error(password_error)}"
        '<button type="submit">Sign in</button>\n</form>'
    )
    return _layout(provider, copy.sign_in_title, body)


def consent_page(
    provider: Provider,
    *,
    action: str,
    flow_id: str,
    app: str,
    account: str,
    scopes: Iterable[str],
) -> str:
    """The permissions the app asks for, with Accept / Cancel (`decision`)."""
    copy = COPY[provider]
    title = copy.consent_title.format(app=app)
    items = "\n".join(f"<li>{escape(scope)}</li>" for scope in scopes)
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p>Signed in as <span class="account">{escape(account)}</span></p>\n'
        f'<p><span class="app">{escape(app)}</span> needs permission to:</p>\n'
        f'<ul class="scopes">\n{items}\n</ul>\n'
        f'<form method="post" action="{escape(action)}">\n'
        f"{_hidden('flow', flow_id)}\n"
        f'<button type="submit" name="decision" value="accept">{escape(copy.accept)}</button>\n'
        f'<button type="submit" name="decision" value="cancel">{escape(copy.cancel)}</button>\n'
        "</form>"
    )
    return _layout(provider, title, body)


def error_page(provider: Provider, *, heading: str, message: str, details: str = "") -> str:
    """A dead end: the request cannot go back to the app (e.g. its redirect URI is unknown)."""
    copy = COPY[provider]
    body = (
        f"<h1>{escape(copy.error_title)}</h1>\n"
        f'<h2 class="error-code">{escape(heading)}</h2>\n'
        f'<p class="error-message">{escape(message)}</p>\n'
        + (f'<pre class="error-details">{escape(details)}</pre>' if details else "")
    )
    return _layout(provider, copy.error_title, body)


def device_code_page(
    provider: Provider, *, action: str, error: str | None = None, user_code: str = ""
) -> str:
    """The verification page (RFC 8628 §3.3): one `user_code` field."""
    copy = COPY[provider]
    body = (
        f"<h1>{escape(copy.device_title)}</h1>\n"
        f"<p>{escape(copy.device_prompt)}</p>\n"
        f'<form method="post" action="{escape(action)}">\n'
        f'<label>Code <input type="text" name="user_code" value="{escape(user_code)}" '
        'autocomplete="off" required></label>\n'
        f"{_error(error)}"
        '<button type="submit">Next</button>\n</form>'
    )
    return _layout(provider, copy.device_title, body)


def device_done_page(provider: Provider, *, app: str, approved: bool) -> str:
    """What the person sees after deciding about a device: signed in, or declined."""
    copy = COPY[provider]
    text = (copy.device_done if approved else copy.device_declined).format(app=app)
    title = "You have signed in" if approved else "Sign-in declined"
    body = f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>"
    return _layout(provider, title, body)

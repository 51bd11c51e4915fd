"""What a mail server's refusal means, and what the admin does about it. Pure: no I/O.

Mail servers say little ("AUTHENTICATE failed."). The catalog reads what they said, on which host,
at which step, with which SASL error challenge, and names the likely causes in the order an admin
should check them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgate.mail.sasl import ErrorChallenge

MICROSOFT_HOSTS = re.compile(
    r"(^|\.)(office365\.com|outlook\.com|office365\.us|partner\.outlook\.cn)$", re.I
)
GOOGLE_HOSTS = re.compile(r"(^|\.)(gmail\.com|googlemail\.com)$", re.I)


def provider_of(host: str) -> str:
    host = host.rstrip(".")
    if MICROSOFT_HOSTS.search(host):
        return "microsoft"
    if GOOGLE_HOSTS.search(host):
        return "google"
    return "other"


@dataclass(frozen=True)
class Failure:
    """What went wrong at one step, as observed."""

    step: str
    protocol: str
    host: str
    port: int
    text: str
    auth: str = "oauth2"
    challenge: ErrorChallenge | None = None
    account: str | None = None
    username: str | None = None
    kind: str = ""  # a machine tag: "refused", "timeout", "certificate", "hostname", ...


def diagnose(f: Failure) -> str:
    """One paragraph: the cause(s) and the fix, in the admin's words."""
    provider = provider_of(f.host)
    service = "IMAP" if f.protocol == "imap" else "POP"
    text = f.text

    if f.step == "resolve":
        return (
            f"The host name {f.host} does not resolve: check its spelling and this host's DNS "
            "(Microsoft 365: outlook.office365.com; Gmail: imap.gmail.com / pop.gmail.com)."
        )
    if f.step == "connect":
        if f.kind == "timeout":
            return (
                f"Nothing answers at {f.host}:{f.port} (the connection timed out): a firewall "
                f"probably blocks outgoing port {f.port}; allow it, or check the port."
            )
        return (
            f"{f.host} refused the connection on port {f.port}: check the port "
            f"(IMAP 993 with ssl, 143 with starttls; POP3 995 / 110) and that the server is up."
        )
    if f.step == "tls":
        if f.kind == "hostname":
            return (
                f"The server's certificate is not valid for {f.host}: connect with the name the "
                "certificate was issued for."
            )
        if f.kind == "certificate":
            return (
                f"The server's TLS certificate is not trusted ({text}): if the server uses a "
                "private CA, give its certificate with --ca-file; otherwise the server's "
                "certificate is wrong or a proxy intercepts the connection. mailgate never "
                "turns verification off."
            )
        if f.kind == "starttls":
            return (
                f"The server does not offer STARTTLS on port {f.port}: use --security ssl "
                "with the implicit-TLS port (993 / 995)."
            )
        return f"The TLS handshake with {f.host} failed ({text}): check --security and the port."
    if f.step == "greeting":
        return (
            f"{f.host}:{f.port} did not greet like an {f.protocol.upper()} server ({text}): "
            "check the protocol and the port."
        )
    if f.step == "token":
        return text  # the token keeper already explains it in full
    if f.step == "authenticate":
        return _authentication(f, provider, service)
    if f.step in ("select", "stat"):
        if f.protocol == "imap":
            return (
                f"The folder could not be opened ({text}): check --folder (names are case "
                'sensitive except INBOX; Gmail\'s are like "[Gmail]/All Mail").'
            )
        return f"The mailbox could not be opened ({text}): the server may be busy; try again."
    return text


def _authentication(f: Failure, provider: str, service: str) -> str:
    text = f.text
    if re.search(r"UNAVAILABLE|SYS/TEMP|Temporary authentication failure", text, re.I):
        return (
            "The server could not check the credentials right now (a temporary failure on its "
            "side, e.g. its OAuth 2.0 token check is unreachable): mailgate retries; if it "
            "persists, check the mail server's authentication backend."
        )
    if "AccessTokenExpired" in text:
        return (
            "The server ended the session because the access token expired: mailgate refreshes "
            "the token and reconnects by itself."
        )
    if f.auth == "password":
        if provider == "microsoft":
            return (
                "Microsoft refused the password: Exchange Online has switched off password "
                f"(basic) authentication for {service}. Use OAuth 2.0: add an integration, "
                "authorize the account, and set --credential on this mailbox."
            )
        if provider == "google":
            return (
                "Google refused the password (with 2-step verification Gmail wants an app "
                "password, and Google is ending those for IMAP/POP). Use OAuth 2.0: add a Google "
                "integration, authorize the account, and set --credential on this mailbox."
            )
        return f"The server refused the username or password ({text}): check both."
    who = f"token of {f.account}" if f.account else "token"
    mismatch = ""
    if f.account and f.username and f.account.lower() != f.username.lower():
        mismatch = (
            f" The {who} is used to log in as {f.username}: that works only for a shared "
            f"mailbox the account has FullAccess to; otherwise set --username {f.account}."
        )
    if provider == "microsoft":
        return (
            f"Microsoft refused the {who} for {service} ({text}), although the sign-in at Entra "
            "ID worked. Check, in this order: (1) " + service + " is enabled for the mailbox: "
            f"`Set-CASMailbox -Identity {f.username or 'MAILBOX'} -"
            + ("ImapEnabled" if service == "IMAP" else "PopEnabled")
            + " $true`; (2) the token's account is the mailbox, or has FullAccess to it "
            "(`Add-MailboxPermission`); (3) the integration asks for the "
            + ("IMAP.AccessAsUser.All" if service == "IMAP" else "POP.AccessAsUser.All")
            + " scope (`mailgate integration set NAME --use "
            + ("imap" if service == "IMAP" else "pop")
            + "`, then authorize again); (4) for app-only tokens: the service principal exists "
            "(`New-ServicePrincipal`) and has FullAccess to the mailbox. Microsoft's Remote "
            "Connectivity Analyzer (testconnectivity.microsoft.com) tests the same login."
            + mismatch
        )
    if provider == "google":
        return (
            f"Google refused the {who} ({text}). Check that the account signed in is the "
            "mailbox's, that the integration has the https://mail.google.com/ scope, and that "
            f"{service} is enabled (Gmail settings; Workspace admin console: POP and IMAP "
            "access). If the app's consent screen is in Testing status, Google expires refresh "
            "tokens after 7 days: publish the app, then authorize again." + mismatch
        )
    challenge = f" (the server said {f.challenge.summary})" if f.challenge else ""
    return (
        f"The server refused the {who}{challenge}: check that the token's account is the "
        "login (--username), that the server accepts tokens from this provider (its OAuth 2.0 "
        "introspection or issuer), and that the scopes the integration asks for are the ones "
        "the server requires." + mismatch
    )

"""What a mail server's refusal means, and what the admin does about it. Pure: no I/O.

Mail servers say little ("AUTHENTICATE failed."). The catalog reads what they said, on which host,
at which step, with which SASL error challenge, and names the likely causes in the order an admin
should check them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from mailgate.mail.errors import enhanced_status, says_try_later
from mailgate.mail.sasl import ErrorChallenge


class SmtpFailureLike(Protocol):
    step: str
    text: str
    code: int | None
    kind: str
    challenge: ErrorChallenge | None


class SmtpServerLike(Protocol):
    name: str
    host: str
    port: int
    username: str
    from_address: str
    credential_id: int | None


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
    service = {"imap": "IMAP", "pop3": "POP", "smtp": "SMTP"}.get(f.protocol, f.protocol.upper())
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
    if says_try_later(text):
        return (
            "The server could not check the credentials right now (a temporary failure on its "
            "side, e.g. its OAuth 2.0 token check is unreachable): mailgate retries; if it "
            "persists, check the mail server's authentication backend."
        )
    # Exchange Online's "* BYE Session invalidated - AccessTokenExpired" carries no response
    # code: its words are all there is.
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


def diagnose_smtp(failure: SmtpFailureLike, server: SmtpServerLike) -> str:
    """What an SMTP server's refusal means, and the fix (Exchange Online's and Gmail's texts)."""
    provider = provider_of(server.host)
    text = failure.text
    status = enhanced_status(text)
    oauth = server.credential_id is not None
    if failure.step in ("connect", "tls", "greeting", "resolve"):
        if failure.step == "tls" and failure.kind == "starttls":
            return (
                f"{server.host}:{server.port} does not offer STARTTLS: use --security ssl with "
                "port 465, or the submission port 587 with --security starttls."
            )
        general = diagnose(
            Failure(
                step=failure.step,
                protocol="smtp",
                host=server.host,
                port=server.port,
                text=text,
                kind=failure.kind,
            )
        )
        return general.replace(
            "(IMAP 993 with ssl, 143 with starttls; POP3 995 / 110)",
            "(SMTP submission 587 with starttls, 465 with ssl)",
        )
    if failure.step == "token":
        return text
    if status == "5.7.57":
        return (
            f"{server.host} wants TLS and a sign-in before it takes mail ({failure.code} "
            f"{text}): use --security starttls on port 587, and a credential or password."
        )
    if failure.step == "authenticate":
        if failure.kind == "mechanism":
            return (
                f"{server.host} offers no XOAUTH2 or OAUTHBEARER ({text}): it does not take OAuth "
                "2.0 tokens on this port; check the host and port, or use --password-file if the "
                "server only takes passwords."
            )
        # 5.7.139 says SMTP AUTH is off; only the words after it say where it was turned off.
        if status == "5.7.139" or "SmtpClientAuthentication" in text:
            if "disabled for the Tenant" in text:
                return (
                    "Exchange Online has SMTP AUTH switched off for the whole organization (535 "
                    "5.7.139, new tenants have it off by default): turn it on with "
                    "`Set-TransportConfig -SmtpClientAuthenticationDisabled $false`, or for this "
                    f"mailbox only with `Set-CASMailbox -Identity {server.username} "
                    "-SmtpClientAuthenticationDisabled $false`."
                )
            if "security defaults" in text:
                return (
                    "Microsoft refused SMTP AUTH because the organization's security defaults "
                    "(or a Conditional Access policy) block it (535 5.7.139): exclude this "
                    "account or enable SMTP AUTH in the policy, then try again."
                )
            return (
                f"Exchange Online refused SMTP AUTH for {server.username} (535 5.7.139): turn on "
                f"Authenticated SMTP for the mailbox with `Set-CASMailbox -Identity {server.username} "
                "-SmtpClientAuthenticationDisabled $false` (Microsoft 365 admin center: the user's "
                "Mail tab, Manage email apps, Authenticated SMTP), and check that security "
                "defaults do not block it."
            )
        if status == "5.7.9" or "Application-specific password" in text:
            return (
                "Gmail wants an app password for this account (534 5.7.9), and Google is ending "
                "them: use OAuth 2.0 — add a Google integration, authorize the account, and set "
                f"`mailgate smtp set {server.name} --credential ID`."
            )
        if provider == "google":
            return (
                f"Gmail refused the {'token' if oauth else 'password'} ({failure.code} {text}). "
                "Check that the credential's account is the login (--username), that it was "
                "authorized with the https://mail.google.com/ scope, and — if the app's consent "
                "screen is in Testing — authorize again (Google expires those after 7 days)."
            )
        if provider == "microsoft" and oauth:
            return (
                f"Exchange Online refused the token ({failure.code} {text}). Check, in this "
                f"order: (1) the token's account is {server.username}, or may send as it; (2) the "
                "integration asks for SMTP.Send (`mailgate integration set NAME --use smtp`, then "
                "authorize again); (3) Authenticated SMTP is on for the mailbox (`Set-CASMailbox "
                f"-Identity {server.username} -SmtpClientAuthenticationDisabled $false`); (4) for "
                "an app-only credential: the app has SMTP.SendAsApp and its service principal "
                "may send as the mailbox. testconnectivity.microsoft.com tests the same sign-in."
            )
        if says_try_later(smtp_code=failure.code):
            return (
                "The server could not check the credentials right now (a temporary failure on "
                "its side): mailgate retries."
            )
        challenge = f" (the server said {failure.challenge.summary})" if failure.challenge else ""
        return (
            f"The server refused the {'token' if oauth else 'password'}{challenge}: check the "
            "login (--username) and that the server accepts tokens from this provider."
        )
    # The mail transaction.
    # Exchange Online refuses Send As with 5.7.60, 5.2.252, or the catch-all 5.2.0 and the word
    # SendAsDenied; other servers say "send as" in words only.
    if status in ("5.7.60", "5.2.252") or "SendAsDenied" in text or "send as" in text.lower():
        return (
            f"The server does not let {server.username} send as {server.from_address} "
            f"({failure.code} {text}): use the mailbox's own address as --from, or grant Send As "
            "on that address (`Add-RecipientPermission`)."
        )
    if failure.kind == "recipients":
        return f"The server refused the recipients ({text}): check the addresses."
    if failure.kind == "smtputf8":
        return (
            "No attempt can send it through this server, so it is dead at once: send through an "
            "SMTP server that offers SMTPUTF8 (Postfix with smtputf8_enable = yes, Exchange "
            "Online, Gmail) and retry it (`mailgate outbox retry`), or write to the person at an "
            "ASCII address."
        )
    if failure.kind == "address":
        return f"No server can take this address ({text}): correct it."
    if (failure.code or 0) // 100 == 4:
        return f"The server deferred the message ({failure.code} {text}): mailgate retries."
    if failure.kind == "connection":
        return f"The connection broke while sending ({text}): mailgate retries."
    return f"The server refused the message ({failure.code} {text})."
